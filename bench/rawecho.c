/*
 * Loopback ceiling for bench/run.mjs: answers the WebSocket handshake with a
 * fixed 101 and then writes back every byte it reads, without any WebSocket
 * work (the masked client frames go back as they came; the load generator
 * accepts them).  Its numbers are what this machine's loopback and the load
 * generator can do, the upper bound for every real server.
 *
 * Usage: rawecho PORT   (listens on 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Only the load generator talks to this server, and it always sends RFC 6455's
 * example key, so the accept value is a constant. */
static const char reply[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

struct conn {
  int fd;
  char *request;         /* the handshake being read; NULL once upgraded */
  size_t request_len;
  char *out;             /* bytes the kernel did not take yet */
  size_t out_len, out_off;
};

static int ep;
static char buf[1 << 18];

static void set_events(struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct conn *c) {
  close(c->fd);
  free(c->request);
  free(c->out);
  free(c);
}

/* Write, and keep what did not fit; reading pauses until it is out, which
 * passes the kernel's back-pressure on to the client. */
static int send_all(struct conn *c, const char *p, size_t n) {
  ssize_t w = write(c->fd, p, n);
  if (w < 0 && errno != EAGAIN) return -1;
  if (w < 0) w = 0;
  if ((size_t)w < n) {
    c->out = malloc(n - w);
    memcpy(c->out, p + w, n - w);
    c->out_len = n - w;
    c->out_off = 0;
    set_events(c, EPOLLOUT);
  }
  return 0;
}

/* Length of the request head including its blank line, 0 if incomplete. */
static size_t header_end(const char *s) {
  const char *e = strstr(s, "\r\n\r\n");
  return e ? (size_t)(e - s) + 4 : 0;
}

static void on_readable(struct conn *c) {
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN)) return drop(c);
  if (n < 0) return;
  char *p = buf;
  if (c->request) {
    size_t take = (size_t)n < 4095 - c->request_len ? (size_t)n : 4095 - c->request_len;
    memcpy(c->request + c->request_len, buf, take);
    c->request_len += take;
    c->request[c->request_len] = 0;
    size_t head = header_end(c->request);
    if (!head) {
      if (c->request_len == 4095) drop(c);
      return;
    }
    size_t used = head + take - c->request_len;   /* part of this read */
    free(c->request);
    c->request = NULL;
    if (write(c->fd, reply, sizeof reply - 1) != sizeof reply - 1) return drop(c);
    p += used;
    n -= used;
  }
  if (n > 0 && send_all(c, p, n) < 0) drop(c);
}

static void on_writable(struct conn *c) {
  ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
  if (w < 0 && errno != EAGAIN) return drop(c);
  if (w > 0 && (c->out_off += w) == c->out_len) {
    free(c->out);
    c->out = NULL;
    set_events(c, EPOLLIN);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rawecho PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, SOMAXCONN)) {
    perror("rawecho: listen");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("listening on ws://127.0.0.1:%s\n", argv[1]);
  fflush(stdout);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          c->request = malloc(4096);
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if (c->out) {
        on_writable(c);
      } else {
        on_readable(c);
      }
    }
  }
}
