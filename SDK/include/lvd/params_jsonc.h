/*
 * lvd/params_jsonc.h — optional helpers for C plugins that read their params with json-c.
 *
 * Not part of lvd.h (it needs json-c: link with -ljson-c). The host validates params against
 * the plugin's params_schema and fills in defaults before `create`, so these helpers only
 * convert; they still check types, so a plugin is safe when called by another host.
 */
#ifndef LVD_PARAMS_JSONC_H
#define LVD_PARAMS_JSONC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

LVD_EXTERN_C_BEGIN

/*
 * Parses `params_json` (NULL or "" = {}) into a JSON object. Returns a new json_object the
 * caller puts with json_object_put, or NULL with `error` filled (LVD_ERR_PARSE).
 */
static inline struct json_object *lvd_params_parse(const char *params_json, lvd_error *error) {
    if (params_json == NULL || params_json[0] == '\0') return json_object_new_object();
    enum json_tokener_error parse_error = json_tokener_success;
    struct json_object *root = json_tokener_parse_verbose(params_json, &parse_error);
    if (root == NULL) {
        lvd_error_set(error, LVD_ERR_PARSE, "params are not JSON: %s", json_tokener_error_desc(parse_error));
        return NULL;
    }
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "params must be a JSON object");
        return NULL;
    }
    return root;
}

/*
 * Reads string param `key` into *out (borrowed from `params`, valid while it lives).
 * Absent: *out = fallback, LVD_OK. Present with another type: LVD_ERR_INVALID_ARGUMENT.
 */
static inline lvd_status lvd_params_string(struct json_object *params, const char *key, const char *fallback,
                                           const char **out, lvd_error *error) {
    struct json_object *value = NULL;
    if (!json_object_object_get_ex(params, key, &value) || value == NULL) {
        *out = fallback;
        return LVD_OK;
    }
    if (!json_object_is_type(value, json_type_string))
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "param '%s' must be a string", key);
    *out = json_object_get_string(value);
    return LVD_OK;
}

/* As lvd_params_string, for numbers (integers are accepted). */
static inline lvd_status lvd_params_double(struct json_object *params, const char *key, double fallback,
                                           double *out, lvd_error *error) {
    struct json_object *value = NULL;
    if (!json_object_object_get_ex(params, key, &value) || value == NULL) {
        *out = fallback;
        return LVD_OK;
    }
    if (!json_object_is_type(value, json_type_double) && !json_object_is_type(value, json_type_int))
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "param '%s' must be a number", key);
    *out = json_object_get_double(value);
    return LVD_OK;
}

/* As lvd_params_string, for integers. */
static inline lvd_status lvd_params_int(struct json_object *params, const char *key, int64_t fallback,
                                        int64_t *out, lvd_error *error) {
    struct json_object *value = NULL;
    if (!json_object_object_get_ex(params, key, &value) || value == NULL) {
        *out = fallback;
        return LVD_OK;
    }
    if (!json_object_is_type(value, json_type_int))
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "param '%s' must be an integer", key);
    *out = json_object_get_int64(value);
    return LVD_OK;
}

/* As lvd_params_string, for booleans. */
static inline lvd_status lvd_params_bool(struct json_object *params, const char *key, bool fallback,
                                         bool *out, lvd_error *error) {
    struct json_object *value = NULL;
    if (!json_object_object_get_ex(params, key, &value) || value == NULL) {
        *out = fallback;
        return LVD_OK;
    }
    if (!json_object_is_type(value, json_type_boolean))
        return lvd_error_set(error, LVD_ERR_INVALID_ARGUMENT, "param '%s' must be a boolean", key);
    *out = json_object_get_boolean(value);
    return LVD_OK;
}

LVD_EXTERN_C_END

#endif /* LVD_PARAMS_JSONC_H */
