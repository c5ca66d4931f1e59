/*
 * lvd/tensor.h — the shared tensor runtime (service table "lvd.tensor/1").
 *
 * Tensors are opaque, reference-counted handles owned by libLVDRuntime.so, shared by the host
 * and every plugin. A plugin obtains the table with
 *
 *     const lvd_tensor_api *tensors = host->get_extension(host, LVD_TENSOR_EXTENSION_ID);
 *
 * Reference counting: a function that returns a new handle (create, …) gives the caller one
 * reference, which it gives back with release. retain adds one. Using a handle after its last
 * release is detected and answered with LVD_ERR_RELEASED_HANDLE (never a crash).
 */
#ifndef LVD_TENSOR_H
#define LVD_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "version.h"

LVD_EXTERN_C_BEGIN

#define LVD_TENSOR_EXTENSION_ID "lvd.tensor/1"

/* Largest rank a tensor may have. */
#define LVD_TENSOR_MAX_RANK 8

/* Element types. Compute is fp32; f16/bf16 are storage types for weights; u8 for images. */
typedef int32_t lvd_dtype;
#define LVD_DTYPE_F32 0
#define LVD_DTYPE_F16 1
#define LVD_DTYPE_BF16 2
#define LVD_DTYPE_U8 3

typedef struct lvd_tensor lvd_tensor;

typedef struct lvd_tensor_api {
    uint32_t struct_size; /* sizeof(lvd_tensor_api) as the runtime was built */

    /*
     * Creates a contiguous tensor of `dtype` and shape `shape[0..rank)`, each extent >= 0,
     * rank <= LVD_TENSOR_MAX_RANK. `data` (may be NULL = zeros) holds the elements in row-major
     * order and is copied. Stores a new handle (one reference) in *out.
     * Failure: LVD_ERR_INVALID_ARGUMENT (bad dtype, rank or extent), *out untouched.
     * Thread rule: any thread.
     */
    lvd_status (*create)(lvd_dtype dtype, uint32_t rank, const int64_t *shape, const void *data,
                         lvd_tensor **out, lvd_error *error);

    /* Adds a reference. Failure: LVD_ERR_RELEASED_HANDLE. Thread rule: any thread. */
    lvd_status (*retain)(lvd_tensor *tensor, lvd_error *error);

    /* Drops a reference; the last one frees the tensor. Failure: LVD_ERR_RELEASED_HANDLE. */
    lvd_status (*release)(lvd_tensor *tensor, lvd_error *error);

    /*
     * Describes a tensor: its dtype, rank, and shape into `shape[0..capacity)`
     * (capacity >= rank required). Any out pointer may be NULL.
     * Failure: LVD_ERR_RELEASED_HANDLE, LVD_ERR_INVALID_ARGUMENT (capacity too small).
     */
    lvd_status (*describe)(const lvd_tensor *tensor, lvd_dtype *dtype, uint32_t *rank, int64_t *shape,
                           uint32_t capacity, lvd_error *error);

    /*
     * Copies the elements, row-major, into `destination` of `capacity_bytes`.
     * Failure: LVD_ERR_INVALID_ARGUMENT when capacity_bytes is smaller than the tensor's bytes.
     */
    lvd_status (*read)(const lvd_tensor *tensor, void *destination, size_t capacity_bytes,
                       lvd_error *error);

    /* Number of live tensor handles in this process (diagnostics and leak tests). Never fails. */
    int64_t (*live_count)(void);
} lvd_tensor_api;

LVD_EXTERN_C_END

#endif /* LVD_TENSOR_H */
