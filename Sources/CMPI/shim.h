// Open MPI's C interface (Debian: libopenmpi-dev, pkg-config name "ompi-c").
#include <mpi.h>
