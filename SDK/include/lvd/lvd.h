/*
 * lvd/lvd.h — the whole lvd plugin SDK. A plugin needs these headers and nothing else.
 *
 *   version.h  ABI version, export macro
 *   status.h   status codes, lvd_error
 *   host.h     lvd_host: logging, progress, cancellation, get_extension
 *   plugin.h   lvd_plugin_entry(), lvd_plugin_library, lvd_plugin_descriptor
 *   planner.h  "lvd.planner/1"
 *   method.h   "lvd.method/1"
 *   tensor.h   "lvd.tensor/1"
 *   model.h    "lvd.model/1"
 */
#ifndef LVD_LVD_H
#define LVD_LVD_H

#include "version.h"
#include "status.h"
#include "host.h"
#include "plugin.h"
#include "planner.h"
#include "tensor.h"
#include "method.h"
#include "model.h"

#endif /* LVD_LVD_H */
