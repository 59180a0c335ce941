// CRC-32 (IEEE 802.3, the polynomial of zlib and PNG) of checkpoint tensors and files: any one
// flipped byte, and any burst of up to 32 bits, changes it. CRC-32C (Castagnoli), which frames the
// records of TensorBoard's event files, uses the same code with its own polynomial.
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "include/pointwise_kernels.h"

static uint32_t ieee[8][256], castagnoli[8][256];
static pthread_once_t tables_built = PTHREAD_ONCE_INIT;

static void build(uint32_t table[8][256], uint32_t polynomial) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? polynomial ^ (c >> 1) : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

static void build_tables(void) {
    build(ieee, 0xEDB88320u);
    build(castagnoli, 0x82F63B78u);
}

// Slicing by 8: eight table lookups per 8 bytes (about 1-2 GB/s), no CPU-specific instruction.
static uint32_t crc_with(uint32_t table[8][256], uint32_t crc, const uint8_t *bytes, int64_t count) {
    pthread_once(&tables_built, build_tables);
    crc = ~crc;
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        uint32_t lo = crc ^ ((uint32_t)bytes[i] | (uint32_t)bytes[i + 1] << 8 | (uint32_t)bytes[i + 2] << 16 | (uint32_t)bytes[i + 3] << 24);
        uint32_t hi = (uint32_t)bytes[i + 4] | (uint32_t)bytes[i + 5] << 8 | (uint32_t)bytes[i + 6] << 16 | (uint32_t)bytes[i + 7] << 24;
        crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24]
            ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
    }
    for (; i < count; i++) crc = table[0][(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

uint32_t st_crc32(uint32_t crc, const uint8_t *bytes, int64_t count) { return crc_with(ieee, crc, bytes, count); }

uint32_t st_crc32c(uint32_t crc, const uint8_t *bytes, int64_t count) { return crc_with(castagnoli, crc, bytes, count); }
