/*
 * lvd/plugin.h — what a plugin library exports.
 *
 * A plugin library is a shared object that exports exactly one symbol:
 *
 *     LVD_EXPORT const lvd_plugin_library *lvd_plugin_entry(void);
 *
 * (a function, not a data symbol, so that languages that cannot export C data — Swift — can
 * provide it). One library may hold several plugins; each is described by an
 * lvd_plugin_descriptor and serves its kind's interface, fetched by versioned id
 * ("lvd.planner/1", "lvd.method/1") through get_interface.
 *
 * Lifecycle, driven by the host:
 *   1. dlopen the file a manifest names (never dlclose: Swift and C++ runtimes do not survive it);
 *   2. call lvd_plugin_entry(), check abi_major == LVD_ABI_MAJOR and struct_size;
 *   3. setup(host) once; on failure the library is unusable and its message is shown;
 *   4. plugin_count / plugin_descriptor / get_interface, any number of times;
 *   5. teardown() once before the process exits (only if setup succeeded).
 */
#ifndef LVD_PLUGIN_H
#define LVD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "status.h"
#include "version.h"

LVD_EXTERN_C_BEGIN

/* Plugin kinds (lvd_plugin_descriptor.kind) and the interface each kind serves. */
#define LVD_PLUGIN_KIND_PLANNER "planner"
#define LVD_PLUGIN_KIND_METHOD "method"

/* Name of the one exported symbol, for dlsym. */
#define LVD_PLUGIN_ENTRY_SYMBOL "lvd_plugin_entry"

/*
 * Describes one plugin. All strings are UTF-8, owned by the library, and valid until teardown.
 */
typedef struct lvd_plugin_descriptor {
    uint32_t struct_size;     /* sizeof(lvd_plugin_descriptor) as the plugin was built */
    const char *id;           /* unique, [a-z0-9][a-z0-9._-]*, e.g. "lvd-gligen" */
    const char *kind;         /* LVD_PLUGIN_KIND_* */
    const char *name;         /* human-readable name */
    const char *version;      /* the plugin's own version, e.g. "1.2.0" */
    const char *description;  /* one line */
    /*
     * JSON object describing the parameters `create` accepts, or NULL for none:
     *   {"type": "object", "additionalProperties": false, "required": ["path"],
     *    "properties": {"steps": {"type": "integer", "default": 40, "minimum": 1,
     *                             "description": "denoising steps"}, …}}
     * Property types: "string", "integer", "number", "boolean", "array", "object";
     * optional "default", "enum", "minimum", "maximum", "description".
     * The host validates user parameters against it and passes `create` the defaults merged
     * with the manifest's and the user's values.
     */
    const char *params_schema;
} lvd_plugin_descriptor;

/*
 * The table lvd_plugin_entry() returns: static storage owned by the library, valid for the
 * life of the process.
 */
typedef struct lvd_plugin_library {
    uint32_t struct_size; /* sizeof(lvd_plugin_library) as the plugin was built */
    uint32_t abi_major;   /* LVD_ABI_MAJOR the plugin was built against */
    uint32_t abi_minor;   /* LVD_ABI_MINOR the plugin was built against */

    /*
     * Called once, before any other function of the table. `host` stays valid until teardown.
     * Returns LVD_OK, or fills `error` (never NULL here) and returns a failure status; the host
     * then reports the message and uses nothing else of this library.
     * Thread rule: main thread.
     */
    lvd_status (*setup)(const lvd_host *host, lvd_error *error);

    /*
     * Called once after a successful setup, before the process exits; all instances are
     * destroyed by then. Thread rule: main thread.
     */
    void (*teardown)(void);

    /* Number of plugins in this library. Thread rule: any thread, after setup. */
    uint32_t (*plugin_count)(void);

    /*
     * Descriptor of plugin `index` (0-based), or NULL when index >= plugin_count().
     * The returned memory is owned by the library and valid until teardown.
     * Thread rule: any thread, after setup.
     */
    const lvd_plugin_descriptor *(*plugin_descriptor)(uint32_t index);

    /*
     * The interface table `interface_id` ("lvd.planner/1", …) of plugin `plugin_id`, or NULL when
     * this library has no such plugin or the plugin does not serve that interface. The table
     * starts with `struct_size`, is owned by the library and valid until teardown.
     * Thread rule: any thread, after setup. Failure value: NULL.
     */
    const void *(*get_interface)(const char *plugin_id, const char *interface_id);
} lvd_plugin_library;

/* The signature of the exported entry symbol. */
typedef const lvd_plugin_library *(*lvd_plugin_entry_fn)(void);

LVD_EXTERN_C_END

#endif /* LVD_PLUGIN_H */
