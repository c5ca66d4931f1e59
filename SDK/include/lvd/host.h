/*
 * lvd/host.h — the services the host offers every plugin.
 *
 * A plugin receives `const lvd_host *` in lvd_plugin_library.setup and again in every
 * `create`. It links nothing of the host: logging, progress, cancellation and every service
 * table (tensor runtime, model runtime, …) are reached through this struct.
 */
#ifndef LVD_HOST_H
#define LVD_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "version.h"

LVD_EXTERN_C_BEGIN

/* Log levels for lvd_host.log. */
#define LVD_LOG_TRACE 0
#define LVD_LOG_DEBUG 1
#define LVD_LOG_INFO 2
#define LVD_LOG_WARNING 3
#define LVD_LOG_ERROR 4

typedef struct lvd_host lvd_host;

struct lvd_host {
    /* sizeof(lvd_host) as the host was built; check before reading fields added after 1.0. */
    uint32_t struct_size;
    /* The ABI the host implements. */
    uint32_t abi_major;
    uint32_t abi_minor;

    /* Host name and version, e.g. "lvd", "0.1.0". Static strings, valid for the process lifetime. */
    const char *name;
    const char *version;

    /* Reserved for the host; plugins must not touch it. */
    void *host_data;

    /*
     * Writes one log line. `source` is the plugin id (or NULL), `message` one line of UTF-8
     * without a trailing newline. Both are copied before return.
     * Thread rule: any thread, any time between setup and teardown. Never fails.
     */
    void (*log)(const lvd_host *host, int32_t level, const char *source, const char *message);

    /*
     * Reports progress of long work: `done` of `total` units (total 0 = unknown), `what` a short
     * label ("denoising step"). Strings are copied before return.
     * Thread rule: any thread; the host serialises output. Never fails.
     */
    void (*progress)(const lvd_host *host, const char *source, int64_t done, int64_t total,
                     const char *what);

    /*
     * True once the user asked to stop (Ctrl-C, a time limit, a closed pipe). Long work polls it
     * (e.g. once per denoising step) and returns LVD_ERR_CANCELLED promptly.
     * Thread rule: any thread, cheap enough to call in inner loops. Never fails.
     */
    bool (*is_cancelled)(const lvd_host *host);

    /*
     * Looks up a versioned service table by id, e.g. "lvd.tensor/1" (LVD_TENSOR_EXTENSION_ID).
     * Returns a pointer to a table whose first field is `struct_size`, or NULL when the host does
     * not offer that id. The table is owned by the host and valid until teardown.
     * Thread rule: any thread. Failure value: NULL.
     */
    const void *(*get_extension)(const lvd_host *host, const char *extension_id);
};

LVD_EXTERN_C_END

#endif /* LVD_HOST_H */
