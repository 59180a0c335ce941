// Plain C functions over Open MPI for Swift: MPI's handles and macros stay on this side, and every call
// returns MPI's error code (MPI_SUCCESS is 0) with the error handler set to return, never to abort.
#ifndef SEQTRAIN_MPI_SHIM_H
#define SEQTRAIN_MPI_SHIM_H
#include <stdint.h>

/// Initializes MPI (thread level FUNNELED) unless it already is; sets MPI_ERRORS_RETURN on the world.
int st_mpi_init(void);
int st_mpi_finalize(void);
/// 1 when MPI_Init has run and MPI_Finalize has not.
int st_mpi_is_active(void);
int st_mpi_rank(int *rank);
int st_mpi_size(int *size);
/// Fills `buffer` with MPI's text for `code` (always NUL-terminated).
void st_mpi_error_string(int code, char *buffer, int capacity);

/// Non-blocking collectives: `*request` receives a handle for st_mpi_test / st_mpi_wait, which free it.
/// In-place float and double sums over all ranks.
int st_mpi_iallreduce_sum_float(float *values, int64_t count, void **request);
int st_mpi_iallreduce_sum_double(double *values, int64_t count, void **request);
/// Rank `root`'s `count` bytes into every rank's `bytes`.
int st_mpi_ibroadcast_bytes(void *bytes, int64_t count, int root, void **request);
/// Every rank's `count` bytes, rank order, into `gathered` (size * count bytes).
int st_mpi_iallgather_bytes(const void *bytes, int64_t count, void *gathered, void **request);
/// Sets *done to 1 and frees the handle once the operation finished.
int st_mpi_test(void *request, int *done);
/// Waits for the operation and frees the handle.
int st_mpi_wait(void *request);

/// Point-to-point notes used by the watchdog: a small integer tagged `tag` to `destination`, and
/// a non-blocking probe for one from `source`.
int st_mpi_send_note(int64_t value, int destination, int tag);
int st_mpi_poll_note(int source, int tag, int *arrived, int64_t *value);

int st_mpi_barrier(void);
/// Ends every rank of the job with `code`.
void st_mpi_abort(int code);

#endif
