/*
 * Keeps records whose value contains a configured substring.
 *
 * Config: `contains` (required), the text to look for; `ignore_case` ("true" or "false",
 * default false) compares ASCII letters without case. A matching record is forwarded
 * unchanged (key, value and headers); others are dropped. A value that is not valid UTF-8
 * text fails: it goes to the dead-letter topic with the reason, rather than being matched as
 * garbage.
 */
#include <stdbool.h>
#include <string.h>

#include "weir.h"

static const char *needle;
static size_t needle_len;
static bool ignore_case;

const char *weir_init(const weir_config *config) {
    needle = weir_config_get(config, "contains");
    if (!needle || !*needle) {
        return "config parameter 'contains' is required (deploy with --config contains=TEXT)";
    }
    needle_len = strlen(needle);
    const char *ic = weir_config_get(config, "ignore_case");
    ignore_case = ic && strcmp(ic, "true") == 0;
    weir_log(WEIR_INFO, "keeping values that contain \"%s\"%s", needle, ignore_case ? " (any case)" : "");
    return NULL;
}

/* Length of the valid UTF-8 prefix of `b` (== b.len when all of it is valid). */
static size_t utf8_valid_prefix(weir_bytes b) {
    size_t i = 0;
    while (i < b.len) {
        uint8_t c = b.ptr[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 && c >= 0xc2 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 && c <= 0xf4 ? 4 : 0;
        if (n == 0 || i + n > b.len) return i;
        for (size_t k = 1; k < n; k++) {
            if ((b.ptr[i + k] & 0xc0) != 0x80) return i;
        }
        i += n;
    }
    return i;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool contains(weir_bytes hay) {
    if (needle_len > hay.len) return false;
    for (size_t i = 0; i + needle_len <= hay.len; i++) {
        size_t k = 0;
        while (k < needle_len &&
               (ignore_case ? lower((char)hay.ptr[i + k]) == lower(needle[k]) : (char)hay.ptr[i + k] == needle[k])) {
            k++;
        }
        if (k == needle_len) return true;
    }
    return false;
}

const char *weir_process(const weir_record *record, weir_output *out) {
    size_t valid = utf8_valid_prefix(record->value);
    if (valid != record->value.len) {
        return weir_errorf("value is not UTF-8 text (bad byte at %zu)", valid);
    }
    if (contains(record->value)) {
        weir_forward(out, record);
    }
    return NULL;
}
