// Roam guest stream client: one long-lived connection to IP:PORT that sends as fast as the link allows (or at
// --rate bytes/s), forever, so the host can watch a connection live through a migration.
//   netstream IP:PORT [--proto mptcp|tcp] [--rate BYTES_PER_S] [--stats-s N]
// Console markers (one write() per line, so they stay whole among the workload's heartbeats):
//   ROAM-NET STREAM connected proto=mptcp|tcp local=IP:PORT resets=N [fallback=...]
//   ROAM-NET STREAM mptcp-unavailable errno=N (...) falling back to tcp
//   ROAM-NET STREAM RESET errno=N (...) sent=B resets=N         then a reconnect after 1 s
//   ROAM-NET STREAM CONNECT-FAILED errno=N (...)                 then a retry after 1 s
//   ROAM-NET STREAM pm_subflows=N                                when the kernel's count of additional MPTCP
//                                                                subflows (mptcpi_subflows) changes
//   ROAM-NET STREAM stats sent=B resets=N                        every --stats-s seconds (default 5, 0 = off)
//   ROAM-NET STREAM STALLED 5s sent=B (still waiting) / resumed after Ns stalled   (no byte taken for >= 5 s)
// A peer that closes (the sink never sends, so the socket turning readable with EOF means that) counts as a reset:
//   ROAM-NET STREAM RESET errno=0 (peer closed the connection) ...
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#define SOL_MPTCP_ 284
#define MPTCP_INFO_ 1

// The first fields of the kernel's struct mptcp_info (uapi linux/mptcp.h); enough for the subflow count.
struct mptcp_info_head {
    uint8_t subflows, add_addr_signal, add_addr_accepted, subflows_max, add_addr_signal_max, add_addr_accepted_max;
    uint32_t flags, token;
    uint64_t write_seq, snd_una, rcv_nxt;
    uint8_t local_addr_used, local_addr_max, csum_enabled;
    uint8_t pad[64];
};

static void say(const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(1, line, n);
    (void)w;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: netstream IP:PORT [--proto mptcp|tcp] [--rate BYTES_PER_S] [--stats-s N]\n");
    exit(2);
}

// Returns a connected, blocking socket, or -1 (after saying why). *proto_io may drop from MPTCP to TCP for good
// when the kernel refuses MPTCP sockets.
static int dial(const struct sockaddr_in *dst, int *proto_io) {
    int fd = socket(AF_INET, SOCK_STREAM, *proto_io);
    if (fd < 0 && *proto_io == IPPROTO_MPTCP) {
        int e = errno;
        say("ROAM-NET STREAM mptcp-unavailable errno=%d (%s) falling back to tcp", e, strerror(e));
        *proto_io = IPPROTO_TCP;
        fd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    }
    if (fd < 0) {
        int e = errno;
        say("ROAM-NET STREAM CONNECT-FAILED errno=%d (%s) socket", e, strerror(e));
        return -1;
    }
    // Non-blocking connect with a 5 s limit: a blocking one to a dead network waits minutes for SYN retries.
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, (const struct sockaddr *)dst, sizeof *dst);
    int e = rc == 0 ? 0 : errno;
    if (rc < 0 && e == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int pr = poll(&p, 1, 5000);
        if (pr == 0) e = ETIMEDOUT;
        else if (pr < 0) e = errno;
        else {
            socklen_t l = sizeof e;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) e = errno;
        }
    }
    if (e != 0) {
        say("ROAM-NET STREAM CONNECT-FAILED errno=%d (%s)", e, strerror(e));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fl);
    return fd;
}

// The kernel's count of additional MPTCP subflows (beyond the initial one), or -1 when the connection is plain TCP (never MPTCP, or fallen back because the peer did
// not negotiate it: SOL_MPTCP options then fail).
static int subflows(int fd) {
    struct mptcp_info_head mi;
    socklen_t l = sizeof mi;
    memset(&mi, 0, sizeof mi);
    if (getsockopt(fd, SOL_MPTCP_, MPTCP_INFO_, &mi, &l) < 0) return -1;
    return mi.subflows;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *target = argv[1];
    int proto = IPPROTO_MPTCP;
    double rate = 0;
    int stats_s = 5;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--proto") && i + 1 < argc) {
            const char *p = argv[++i];
            if (!strcmp(p, "mptcp")) proto = IPPROTO_MPTCP;
            else if (!strcmp(p, "tcp")) proto = IPPROTO_TCP;
            else usage();
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--stats-s") && i + 1 < argc) stats_s = atoi(argv[++i]);
        else usage();
    }
    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || (size_t)(colon - target) >= sizeof host) usage();
    memcpy(host, target, colon - target);
    host[colon - target] = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) usage();
    signal(SIGPIPE, SIG_IGN); // a dead peer must show as EPIPE, not kill us silently

    static char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
    unsigned long long sent = 0;
    unsigned resets = 0;
    for (;;) {
        int fd = dial(&dst, &proto);
        if (fd < 0) {
            sleep(1);
            continue;
        }
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        char mine[32] = "?";
        if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0)
            snprintf(mine, sizeof mine, "%s:%u", inet_ntoa(me.sin_addr), ntohs(me.sin_port));
        int sf = proto == IPPROTO_MPTCP ? subflows(fd) : -1;
        if (proto == IPPROTO_MPTCP && sf < 0)
            say("ROAM-NET STREAM connected proto=tcp local=%s resets=%u fallback=peer-not-mptcp", mine, resets);
        else
            say("ROAM-NET STREAM connected proto=%s local=%s resets=%u", proto == IPPROTO_MPTCP ? "mptcp" : "tcp",
                mine, resets);
        double t0 = now_s(), next_stats = t0 + stats_s, next_sf = t0 + 0.2;
        double budget_t = t0, budget = 0;
        int stall_ms = 0;
        for (;;) {
            size_t chunk = sizeof buf;
            if (rate > 0) {
                // Token bucket refilled by elapsed time, at most 100 ms' worth banked.
                double t = now_s();
                budget += (t - budget_t) * rate;
                budget_t = t;
                if (budget > rate / 10 + sizeof buf) budget = rate / 10 + sizeof buf;
                if (budget < 1) {
                    usleep(5000);
                    continue;
                }
                if (chunk > budget) chunk = (size_t)budget;
            }
            // Wait for room with poll, not in send: a stall is then reported (a migration's pause is not an error,
            // but minutes of silence would be), and a peer's close (readable, recv 0; the sink never sends) is seen
            // even when the send side would block forever.
            struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN};
            int pr = poll(&p, 1, 1000);
            if (pr < 0 && errno == EINTR) continue;
            int e = -1;
            const char *why = NULL;
            if (pr < 0) e = errno;
            else if (pr == 0) {
                stall_ms += 1000;
                if (stall_ms == 5000) say("ROAM-NET STREAM STALLED 5s sent=%llu (still waiting)", sent);
                continue;
            } else if (p.revents & POLLIN) {
                char c;
                ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
                if (r == 0) e = 0, why = "peer closed the connection";
                else if (r < 0 && errno != EAGAIN && errno != EINTR) e = errno;
            }
            ssize_t n = 0;
            if (e < 0 && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
                n = send(fd, buf, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                if (n < 0) e = errno;
            }
            if (e >= 0) {
                resets++;
                say("ROAM-NET STREAM RESET errno=%d (%s) sent=%llu resets=%u", e, why ? why : strerror(e), sent,
                    resets);
                close(fd);
                sleep(1);
                break;
            }
            if (n <= 0) continue;
            if (stall_ms >= 5000) say("ROAM-NET STREAM resumed after %ds stalled", stall_ms / 1000);
            stall_ms = 0;
            sent += n;
            if (rate > 0) budget -= n;
            double t = now_s();
            if (sf >= 0 && t >= next_sf) {
                int s = subflows(fd);
                if (s != sf) say("ROAM-NET STREAM pm_subflows=%d", s);
                sf = s;
                next_sf = t + 0.2;
            }
            if (stats_s > 0 && t >= next_stats) {
                say("ROAM-NET STREAM stats sent=%llu resets=%u", sent, resets);
                next_stats = t + stats_s;
            }
        }
    }
}
