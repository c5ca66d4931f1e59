/*
 * lvd/status.h — status codes and the caller-provided error record.
 *
 * Every fallible call across the ABI returns an `lvd_status` and, on failure, fills the
 * `lvd_error` the caller passed (when non-NULL) with a one-line, human-readable message.
 * A plugin never aborts the process on bad input: it returns a status.
 */
#ifndef LVD_STATUS_H
#define LVD_STATUS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "version.h"

LVD_EXTERN_C_BEGIN

typedef int32_t lvd_status;

/* Status codes. New codes may be added in later minors; treat unknown non-zero codes as failure. */
#define LVD_OK 0
#define LVD_ERR_INVALID_ARGUMENT 1 /* a parameter, prompt, layout or shape is not acceptable */
#define LVD_ERR_NOT_FOUND 2        /* a file, id, key or extension does not exist */
#define LVD_ERR_UNSUPPORTED 3      /* a valid request this plugin or host cannot serve */
#define LVD_ERR_OUT_OF_MEMORY 4
#define LVD_ERR_CANCELLED 5        /* the host asked to stop (lvd_host.is_cancelled) */
#define LVD_ERR_IO 6               /* reading or writing a file failed */
#define LVD_ERR_NETWORK 7          /* a remote service failed or could not be reached */
#define LVD_ERR_PARSE 8            /* text (JSON, an LLM response, …) could not be parsed */
#define LVD_ERR_INTERNAL 9         /* a bug; the message says where */
#define LVD_ERR_ABI 10             /* version or struct-size mismatch between host and plugin */
#define LVD_ERR_RELEASED_HANDLE 11 /* a handle was used after its last release */

/* Capacity of lvd_error.message, including the terminating NUL. */
#define LVD_ERROR_MESSAGE_CAPACITY 1024

/*
 * Error record, owned by the caller (usually on its stack).
 * The caller sets `struct_size = sizeof(lvd_error)` (lvd_error_init does) and passes a pointer.
 * The callee writes `status` and a NUL-terminated one-line `message`, truncated to fit.
 * Thread rule: an lvd_error is written only by the call it was passed to.
 */
typedef struct lvd_error {
    uint32_t struct_size;
    lvd_status status;
    char message[LVD_ERROR_MESSAGE_CAPACITY];
} lvd_error;

/* Prepares an error record: struct_size set, status LVD_OK, empty message. */
static inline void lvd_error_init(lvd_error *error) {
    if (error == NULL) return;
    memset(error, 0, sizeof(*error));
    error->struct_size = (uint32_t)sizeof(lvd_error);
}

/*
 * Fills `error` (may be NULL) with `status` and a printf-style message, and returns `status`,
 * so a plugin writes `return lvd_error_set(err, LVD_ERR_INVALID_ARGUMENT, "bad frames %d", n);`.
 * Honours a smaller struct_size written by an older caller.
 */
static inline lvd_status lvd_error_set(lvd_error *error, lvd_status status, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline lvd_status lvd_error_set(lvd_error *error, lvd_status status, const char *format, ...) {
    if (error == NULL || error->struct_size < offsetof(lvd_error, message) + 1) return status;
    size_t capacity = error->struct_size - offsetof(lvd_error, message);
    if (capacity > LVD_ERROR_MESSAGE_CAPACITY) capacity = LVD_ERROR_MESSAGE_CAPACITY;
    error->status = status;
    va_list args;
    va_start(args, format);
    vsnprintf(error->message, capacity, format, args);
    va_end(args);
    return status;
}

/*
 * Fills `error` (may be NULL) with `status` and a copy of `message`, truncated on a UTF-8
 * character boundary to fit, and returns `status`. For callers that cannot use varargs (Swift).
 */
static inline lvd_status lvd_error_set_message(lvd_error *error, lvd_status status, const char *message) {
    if (error == NULL || error->struct_size < offsetof(lvd_error, message) + 1) return status;
    size_t capacity = error->struct_size - offsetof(lvd_error, message);
    if (capacity > LVD_ERROR_MESSAGE_CAPACITY) capacity = LVD_ERROR_MESSAGE_CAPACITY;
    error->status = status;
    size_t length = message == NULL ? 0 : strlen(message);
    if (length > capacity - 1) {
        length = capacity - 1;
        /* Back up to the first byte of a character that fits whole. */
        while (length > 0 && ((unsigned char)message[length] & 0xC0) == 0x80) length--;
    }
    if (length > 0) memcpy(error->message, message, length);
    error->message[length] = '\0';
    return status;
}

/* A stable lower-case name for a status ("ok", "invalid-argument", …); never NULL. */
static inline const char *lvd_status_name(lvd_status status) {
    switch (status) {
    case LVD_OK: return "ok";
    case LVD_ERR_INVALID_ARGUMENT: return "invalid-argument";
    case LVD_ERR_NOT_FOUND: return "not-found";
    case LVD_ERR_UNSUPPORTED: return "unsupported";
    case LVD_ERR_OUT_OF_MEMORY: return "out-of-memory";
    case LVD_ERR_CANCELLED: return "cancelled";
    case LVD_ERR_IO: return "io";
    case LVD_ERR_NETWORK: return "network";
    case LVD_ERR_PARSE: return "parse";
    case LVD_ERR_INTERNAL: return "internal";
    case LVD_ERR_ABI: return "abi";
    case LVD_ERR_RELEASED_HANDLE: return "released-handle";
    default: return "unknown";
    }
}

LVD_EXTERN_C_END

#endif /* LVD_STATUS_H */
