// Compile-time checks of the ABI's layout on this platform. A change that moves a published
// field breaks the build here instead of breaking plugins at run time.
#include "lvd/lvd.h"

#include <stddef.h>

#define LVD_ASSERT_OFFSET(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved")

#if defined(__LP64__)
_Static_assert(sizeof(void *) == 8, "LP64");
LVD_ASSERT_OFFSET(lvd_error, status, 4);
LVD_ASSERT_OFFSET(lvd_error, message, 8);
LVD_ASSERT_OFFSET(lvd_host, abi_major, 4);
LVD_ASSERT_OFFSET(lvd_host, name, 16);
LVD_ASSERT_OFFSET(lvd_host, get_extension, 64);
LVD_ASSERT_OFFSET(lvd_plugin_library, abi_major, 4);
LVD_ASSERT_OFFSET(lvd_plugin_library, abi_minor, 8);
LVD_ASSERT_OFFSET(lvd_plugin_library, setup, 16);
LVD_ASSERT_OFFSET(lvd_plugin_library, get_interface, 48);
_Static_assert(sizeof(lvd_plugin_library) == 56, "lvd_plugin_library 1.0 is 56 bytes");
LVD_ASSERT_OFFSET(lvd_plugin_descriptor, id, 8);
LVD_ASSERT_OFFSET(lvd_plugin_descriptor, params_schema, 48);
LVD_ASSERT_OFFSET(lvd_planner, create, 16);
LVD_ASSERT_OFFSET(lvd_planner, destroy, 40);
LVD_ASSERT_OFFSET(lvd_method_request, seed, 32);
LVD_ASSERT_OFFSET(lvd_method_request, pipeline, 56);
LVD_ASSERT_OFFSET(lvd_method, destroy, 32);
LVD_ASSERT_OFFSET(lvd_tensor_api, live_count, 48);
LVD_ASSERT_OFFSET(lvd_tensor_api, no_grad_end, 112);
LVD_ASSERT_OFFSET(lvd_unet_call, timestep, 16);
LVD_ASSERT_OFFSET(lvd_unet_call, capture_count, 40);
LVD_ASSERT_OFFSET(lvd_unet_call, flags, 44);
LVD_ASSERT_OFFSET(lvd_unet_call, grounding_embeddings, 64);
_Static_assert(sizeof(lvd_unet_call) == 72, "lvd_unet_call 1.0 is 72 bytes");
LVD_ASSERT_OFFSET(lvd_model_api, pipeline_load, 8);
LVD_ASSERT_OFFSET(lvd_model_api, unet, 64);
LVD_ASSERT_OFFSET(lvd_model_api, randn, 128);
#endif

// The version the SDK library was built with, for diagnostics (`lvd plugins check`).
const char *lvd_sdk_abi_version_string(void);
const char *lvd_sdk_abi_version_string(void) {
#define LVD_STR2(x) #x
#define LVD_STR(x) LVD_STR2(x)
    return LVD_STR(LVD_ABI_MAJOR) "." LVD_STR(LVD_ABI_MINOR);
}
