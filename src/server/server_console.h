/* server_console.h - (internal to src/server) the web console's static
 * files, embedded in the binary at build time (tools/embed.cmake writes
 * console_assets.c from src/server/console/), and its route. */
#ifndef SPOKE_SERVER_CONSOLE_H
#define SPOKE_SERVER_CONSOLE_H

#include <stddef.h>

struct srv_asset {
    const char *path;          /* "/index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t size;               /* bytes */
};
extern const struct srv_asset srv_console_assets[];
extern const size_t srv_console_n_assets;

#endif
