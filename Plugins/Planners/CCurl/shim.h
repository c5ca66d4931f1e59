#include <curl/curl.h>

/* curl_easy_setopt is variadic: Swift calls these typed wrappers instead. */
static inline CURLcode lvd_curl_set_long(CURL *curl, CURLoption option, long value) { return curl_easy_setopt(curl, option, value); }
static inline CURLcode lvd_curl_set_pointer(CURL *curl, CURLoption option, const void *value) { return curl_easy_setopt(curl, option, value); }
static inline CURLcode lvd_curl_get_long(CURL *curl, CURLINFO info, long *value) { return curl_easy_getinfo(curl, info, value); }
