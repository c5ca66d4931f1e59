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

#include <stdbool.h>
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

    /*
     * Runs op `name` ("add", "matmul", "softmax", "conv2d", …; docs/tensor-ops.md lists every op,
     * its inputs and attributes) on `inputs[0..input_count)`, with `attributes_json` a JSON object
     * of the op's attributes (NULL or "" = none/defaults), e.g. {"axes": [1], "keepdims": true}.
     * Stores a new handle (one reference) in *out. The result is recorded for backward when
     * grad mode is on for this thread and an input requires grad.
     * Failure: LVD_ERR_NOT_FOUND (unknown op), LVD_ERR_INVALID_ARGUMENT (input count, shapes,
     * axes, attributes — the message names them), LVD_ERR_RELEASED_HANDLE; *out untouched.
     * Thread rule: any thread; ops on shared inputs may run concurrently.
     */
    lvd_status (*op)(const char *name, lvd_tensor *const *inputs, uint32_t input_count, const char *attributes_json,
                     lvd_tensor **out, lvd_error *error);

    /* Every op name, comma-separated; a static string. Never fails. */
    const char *(*op_names)(void);

    /*
     * Marks a tensor as a leaf that gradients flow to (or not).
     * Failure: LVD_ERR_RELEASED_HANDLE. Thread rule: before the tensor is used by other threads.
     */
    lvd_status (*set_requires_grad)(lvd_tensor *tensor, bool requires_grad, lvd_error *error);

    /*
     * Reverse-mode differentiation from `root`: with `seed` NULL the root must hold one finite
     * value; otherwise `seed` has the root's shape. Gradients accumulate into every leaf that
     * requires grad; the graph behind `root` is released.
     * Failure: LVD_ERR_INVALID_ARGUMENT (non-scalar root without seed, root needs no grad, a
     * non-finite root), LVD_ERR_RELEASED_HANDLE. Thread rule: no op on the same graph in flight.
     */
    lvd_status (*backward)(lvd_tensor *root, const lvd_tensor *seed, lvd_error *error);

    /*
     * Stores in *out a new handle to the tensor's accumulated gradient, or NULL when it has none.
     * Failure: LVD_ERR_RELEASED_HANDLE.
     */
    lvd_status (*grad)(const lvd_tensor *tensor, lvd_tensor **out, lvd_error *error);

    /* Clears the accumulated gradient. Failure: LVD_ERR_RELEASED_HANDLE. */
    lvd_status (*zero_grad)(lvd_tensor *tensor, lvd_error *error);

    /*
     * Opens / closes a no-grad scope on the calling thread (scopes nest): inside, ops record
     * nothing and intermediates are freed as soon as they are released. Never fails; an
     * unmatched end is ignored. Thread rule: the thread that opened the scope closes it.
     */
    void (*no_grad_begin)(void);
    void (*no_grad_end)(void);
} lvd_tensor_api;

LVD_EXTERN_C_END

#endif /* LVD_TENSOR_H */
