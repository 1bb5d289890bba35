/* server_console.c - the web console at / : GET / serves the embedded
 * index.html, GET /console/<file> the other embedded files (see
 * server_console.h). Nothing is read from disk and nothing is fetched from
 * the network; a Content-Security-Policy allows only the server's own
 * scripts, styles and connections, so even a bug that put model output
 * into the page as HTML could not run a script. The page itself is public
 * (the gate lets it through without an API key); everything it shows comes
 * from the API, which asks for the key. */
#include "server/server_console.h"
#include "server/server_int.h"

#include <string.h>

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

bool srv_console_route(const char *url)
{
    return !strcmp(url, "/") || !strcmp(url, "/index.html") || !strncmp(url, "/console/", 9);
}

enum MHD_Result srv_console_serve(struct MHD_Connection *c, const char *url, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    const char *name = !strcmp(url, "/") ? "/index.html" : !strncmp(url, "/console/", 9) ? url + 8 : url;
    const struct srv_asset *a = NULL;
    for (size_t i = 0; i < srv_console_n_assets; i++)
        if (!strcmp(srv_console_assets[i].path, name))
            a = &srv_console_assets[i];
    if (!a)
        return srv_error(c, 404, "no such console file", NULL, "not_found", NULL);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    srv_decorate(c, r);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
