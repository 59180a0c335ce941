// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, pkg-config name "openblas").
#include <cblas.h>
