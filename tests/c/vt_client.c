/* A blocking C client, as a C library would write it: the patch tests
 * (tests/patch_c.rs) call it from many greenlets at once. Built by
 * build.rs twice: into a static library linked into the test binary, and
 * into a shared object the test loads with dlopen (VT_NAME renames the
 * entry point there). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef VT_NAME
#define VT_NAME vt_roundtrip
#endif

/* Connects to 127.0.0.1:port, sleeps sleep_us with usleep, sends msg,
 * waits for the reply with poll (timeout_ms), and receives up to outlen
 * bytes into out, until the peer closes. Returns the bytes received, or
 * -errno of the first failure (-ETIMEDOUT when poll timed out). */
int VT_NAME(unsigned short port, const char *msg, char *out, int outlen,
            unsigned sleep_us, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    usleep(sleep_us);
    size_t len = strlen(msg), sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, msg + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    int got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0) {
            close(fd);
            return -ETIMEDOUT;
        }
        ssize_t n = recv(fd, out + got, (size_t)(outlen - got), 0);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0 || got + n >= outlen) {
            got += (int)n;
            break;
        }
        got += (int)n;
    }
    close(fd);
    return got;
}

#ifndef VT_LOOKUP_NAME
#define VT_LOOKUP_NAME vt_lookup
#endif

/* Resolves `name` with getaddrinfo (IPv4) and writes the first address as
 * text into out. Returns 0, or getaddrinfo's error code. */
int VT_LOOKUP_NAME(const char *name, char *out, int outlen) {
    struct addrinfo hints, *res = 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo(name, "80", &hints, &res);
    if (r != 0)
        return r;
    struct sockaddr_in *a = (struct sockaddr_in *)res->ai_addr;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)outlen);
    freeaddrinfo(res);
    return 0;
}
