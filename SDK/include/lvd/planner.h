/*
 * lvd/planner.h — stage 1: prompt → Dynamic Scene Layout (interface "lvd.planner/1").
 *
 * A planner turns a prompt into a layout: a JSON document in the lvd layout format
 * ("format": "lvd.layout/1"; see docs/layout-format.md) with the prompt, optional reasoning,
 * keyframes of objects {id, name, box [x, y, w, h] in canvas pixels} and a background.
 */
#ifndef LVD_PLANNER_H
#define LVD_PLANNER_H

#include <stdint.h>

#include "host.h"
#include "status.h"
#include "version.h"

LVD_EXTERN_C_BEGIN

#define LVD_PLANNER_INTERFACE_ID "lvd.planner/1"

/* One planner instance; opaque, created by lvd_planner.create. */
typedef struct lvd_planner_instance lvd_planner_instance;

/* What to plan. Owned by the caller; valid only during the call. */
typedef struct lvd_plan_request {
    uint32_t struct_size; /* sizeof(lvd_plan_request) as the caller was built */
    const char *prompt;   /* UTF-8, non-NULL */
} lvd_plan_request;

typedef struct lvd_planner {
    uint32_t struct_size; /* sizeof(lvd_planner) as the plugin was built */

    /* Free for the implementation (e.g. per-plugin configuration when one table serves several). */
    const void *plugin_data;

    /*
     * Creates an instance. `self` is this table (so one implementation can serve several
     * plugins); `params_json` is a JSON object already validated against the descriptor's
     * params_schema, with defaults filled in. On success stores the instance in *out.
     * Failure: a status, *out untouched, `error` filled.
     * Thread rule: any thread; instances are independent of each other.
     */
    lvd_status (*create)(const struct lvd_planner *self, const lvd_host *host, const char *params_json,
                         lvd_planner_instance **out, lvd_error *error);

    /*
     * Plans one prompt. On success stores a NUL-terminated UTF-8 layout JSON in *layout_json,
     * owned by the caller, who releases it with free_string. Calling plan again with the same
     * prompt may return another layout (e.g. the n-th cached LLM answer for the n-th request).
     * Failure: a status, *layout_json untouched, `error` filled (LVD_ERR_UNSUPPORTED when the
     * planner cannot plan this prompt; LVD_ERR_CANCELLED when the host asked to stop).
     * Thread rule: one call at a time per instance.
     */
    lvd_status (*plan)(lvd_planner_instance *instance, const lvd_plan_request *request,
                       char **layout_json, lvd_error *error);

    /* Releases a string returned by plan. NULL is ignored. Thread rule: any thread. */
    void (*free_string)(lvd_planner_instance *instance, char *string);

    /* Destroys an instance; NULL is ignored. Thread rule: no other call on it in flight. */
    void (*destroy)(lvd_planner_instance *instance);
} lvd_planner;

LVD_EXTERN_C_END

#endif /* LVD_PLANNER_H */
