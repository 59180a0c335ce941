#include "mpi_shim.h"
#include <mpi.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int st_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int st_mpi_finalize(void) {
    if (!st_mpi_is_active()) return MPI_SUCCESS;
    return MPI_Finalize();
}

int st_mpi_is_active(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int st_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int st_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

void st_mpi_error_string(int code, char *buffer, int capacity) {
    if (capacity <= 0) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
        strncpy(text, "unknown MPI error", sizeof text);
        length = (int)strlen(text);
    }
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, text, (size_t)length);
    buffer[length] = 0;
}

static MPI_Request *new_request(void **request) {
    *request = NULL;
    return malloc(sizeof(MPI_Request));
}

static int started(int rc, MPI_Request *r, void **request) {
    if (rc != MPI_SUCCESS) { free(r); return rc; }
    *request = r;
    return MPI_SUCCESS;
}

int st_mpi_iallreduce_sum_float(float *values, int64_t count, void **request) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request *r = new_request(request);
    if (!r) return MPI_ERR_NO_MEM;
    return started(MPI_Iallreduce(MPI_IN_PLACE, values, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r), r, request);
}

int st_mpi_iallreduce_sum_double(double *values, int64_t count, void **request) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request *r = new_request(request);
    if (!r) return MPI_ERR_NO_MEM;
    return started(MPI_Iallreduce(MPI_IN_PLACE, values, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, r), r, request);
}

int st_mpi_ibroadcast_bytes(void *bytes, int64_t count, int root, void **request) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request *r = new_request(request);
    if (!r) return MPI_ERR_NO_MEM;
    return started(MPI_Ibcast(bytes, (int)count, MPI_BYTE, root, MPI_COMM_WORLD, r), r, request);
}

int st_mpi_iallgather_bytes(const void *bytes, int64_t count, void *gathered, void **request) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request *r = new_request(request);
    if (!r) return MPI_ERR_NO_MEM;
    return started(MPI_Iallgather(bytes, (int)count, MPI_BYTE, gathered, (int)count, MPI_BYTE, MPI_COMM_WORLD, r), r, request);
}

int st_mpi_test(void *request, int *done) {
    MPI_Request *r = request;
    int rc = MPI_Test(r, done, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && *done) free(r);
    return rc;
}

int st_mpi_wait(void *request) {
    MPI_Request *r = request;
    int rc = MPI_Wait(r, MPI_STATUS_IGNORE);
    free(r);
    return rc;
}

int st_mpi_send_note(int64_t value, int destination, int tag) {
    return MPI_Send(&value, 1, MPI_INT64_T, destination, tag, MPI_COMM_WORLD);
}

int st_mpi_poll_note(int source, int tag, int *arrived, int64_t *value) {
    int rc = MPI_Iprobe(source, tag, MPI_COMM_WORLD, arrived, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || !*arrived) return rc;
    return MPI_Recv(value, 1, MPI_INT64_T, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

int st_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

void st_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
