/*
 * multinic-shim, compiled: the same protocol as src/multinic/shim.py, without an
 * interpreter to start. A runtime executes it for every CNI call; it forwards the
 * call's CNI_* environment and stdin to the node daemon over its unix socket and
 * writes back exactly what the daemon answered (docs/node.md, "The shim").
 *
 * It reads three fields of its own config: "socketPath", "connectTimeout" and
 * "replyTimeout" (top-level keys of the JSON on stdin; found by a small scanner,
 * not a JSON parser: the daemon parses and validates the config properly). When no
 * daemon answers in time it prints a CNI error with code 11 and exits 1.
 *
 * Built by `make install` (cc -O2); `multinic install-plugins` installs it when it
 * was built and the Python shim otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/multinic/cni.sock"
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_REPLY_TIMEOUT 300.0

extern char **environ;

struct buffer {
    char *data;
    size_t len, cap;
};

static void put(struct buffer *b, const char *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + len + 1 > cap) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) { perror("multinic-shim"); exit(1); }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void put_str(struct buffer *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal of s: quotes, backslashes and control bytes escaped. */
static void put_json_string(struct buffer *b, const char *s) {
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put_str(b, esc);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Where the value of top-level-looking key "name" starts in json, or NULL. */
static const char *find_value(const char *json, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *at = strstr(json, key);
    if (!at) return NULL;
    at += strlen(key);
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    if (*at != ':') return NULL;
    at++;
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    return at;
}

/* A string field's value (simple escapes only), or fallback. */
static void string_field(const char *json, const char *name, char *out, size_t size,
                         const char *fallback) {
    const char *at = find_value(json, name);
    size_t n = 0;
    if (at && *at == '"') {
        for (at++; *at && *at != '"' && n + 1 < size; at++) {
            if (*at == '\\' && (at[1] == '"' || at[1] == '\\' || at[1] == '/')) at++;
            out[n++] = *at;
        }
        if (*at == '"' && n > 0) { out[n] = '\0'; return; }
    }
    snprintf(out, size, "%s", fallback);
}

/* A number field in (0, 86400), or fallback. */
static double number_field(const char *json, const char *name, double fallback) {
    const char *at = find_value(json, name);
    if (!at) return fallback;
    char *end;
    double value = strtod(at, &end);
    return (end != at && value > 0 && value < 86400) ? value : fallback;
}

static int unavailable(const char *version, const char *socket_path, const char *why) {
    struct buffer out = {0};
    put_str(&out, "{\"cniVersion\": ");
    put_json_string(&out, version);
    put_str(&out, ", \"code\": 11, \"msg\": \"multinic node daemon not available, try again later\", "
                  "\"details\": ");
    char details[512];
    snprintf(details, sizeof details, "no node daemon answers on %s: %s", socket_path, why);
    put_json_string(&out, details);
    put_str(&out, "}\n");
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    return 1;
}

static int connect_until(const char *path, double timeout) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    double deadline = now() + timeout;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
        int saved = errno;
        close(fd);
        if (now() >= deadline) { errno = saved; return -1; }
        usleep(100000);
    }
}

static int send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Everything the daemon sends until it closes, waiting at most timeout seconds. */
static int read_all(int fd, struct buffer *reply, double timeout) {
    double deadline = now() + timeout;
    char chunk[65536];
    for (;;) {
        int left_ms = (int)((deadline - now()) * 1000);
        if (left_ms <= 0) { errno = ETIMEDOUT; return -1; }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, left_ms);
        if (ready < 0) { if (errno == EINTR) continue; return -1; }
        if (ready == 0) { errno = ETIMEDOUT; return -1; }
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        if (n == 0) return 0;
        put(reply, chunk, (size_t)n);
    }
}

int main(void) {
    struct buffer stdin_bytes = {0};
    put(&stdin_bytes, "", 0);
    const char *command = getenv("CNI_COMMAND");
    if (!command || strcmp(command, "VERSION") != 0) {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) put(&stdin_bytes, chunk, n);
    }
    char socket_path[256], version[32];
    string_field(stdin_bytes.data, "socketPath", socket_path, sizeof socket_path, DEFAULT_SOCKET);
    string_field(stdin_bytes.data, "cniVersion", version, sizeof version, "1.1.0");
    double connect_timeout = number_field(stdin_bytes.data, "connectTimeout", DEFAULT_CONNECT_TIMEOUT);
    double reply_timeout = number_field(stdin_bytes.data, "replyTimeout", DEFAULT_REPLY_TIMEOUT);

    struct buffer request = {0};
    put_str(&request, "{\"env\": {");
    int first = 1;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "CNI_", 4) != 0) continue;
        char *eq = strchr(*e, '=');
        if (!eq) continue;
        *eq = '\0';
        if (!first) put_str(&request, ", ");
        put_json_string(&request, *e);
        put_str(&request, ": ");
        put_json_string(&request, eq + 1);
        *eq = '=';
        first = 0;
    }
    put_str(&request, "}}\n");
    put(&request, stdin_bytes.data, stdin_bytes.len);

    int fd = connect_until(socket_path, connect_timeout);
    if (fd < 0) return unavailable(version, socket_path, strerror(errno));
    struct buffer reply = {0};
    put(&reply, "", 0);
    if (send_all(fd, request.data, request.len) < 0 || shutdown(fd, SHUT_WR) < 0 ||
        read_all(fd, &reply, reply_timeout) < 0) {
        int saved = errno;
        close(fd);
        return unavailable(version, socket_path, strerror(saved));
    }
    close(fd);
    char *newline = memchr(reply.data, '\n', reply.len);
    if (!newline || newline == reply.data) return unavailable(version, socket_path, "no answer");
    for (char *c = reply.data; c < newline; c++)
        if (*c < '0' || *c > '9') return unavailable(version, socket_path, "no answer");
    int status = atoi(reply.data);
    size_t head = (size_t)(newline - reply.data) + 1;
    fwrite(reply.data + head, 1, reply.len - head, stdout);
    fflush(stdout);
    return status;
}
