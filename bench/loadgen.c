/*
 * WebSocket load generator used by bench/run.mjs (see bench/README.md).
 *
 * One thread, one epoll, many connections.  Every client frame is built and
 * masked once, and the same bytes are written again and again, so the
 * generator spends its time in syscalls rather than in framing.  Server frames
 * are parsed in place in one shared read buffer and their payloads are skipped
 * (only the count matters).  Each run prints one JSON line on stdout.
 *
 * Modes (-m):
 *   throughput  -c conns, each keeping -f messages of -s bytes in flight,
 *               warm up -w s, then count echoes for -d s
 *   latency     one connection, one -s byte message in flight, -n round trips
 *               (the first tenth are warm-up and not recorded)
 *   connect     open -c idle connections, at most -k handshakes pending,
 *               print the result, then hold them until stdin closes
 *   fanout      -c subscribers on /fanout and one publisher on /publish that
 *               keeps -f messages of -s bytes in flight: a message leaves the
 *               window once every subscriber has received it
 *   scale       -c subscribers on /fanout (with -P, one publisher on /publish
 *               more), at most -k handshakes pending; prints the time it took,
 *               then takes commands on stdin, one a line, until it closes:
 *                 watch K    print {"watching":K} now, and {"seq":K,...} once
 *                            every subscriber has message K (or a later one)
 *                 publish K  (-P) send message K: -s bytes, the first four
 *                            K in big-endian order; print when it went out
 *                 status     print how many subscribers have message K
 *               Times are CLOCK_MONOTONIC seconds, the same clock in every
 *               process of the machine, so that several generators (each
 *               under its own open-file limit) can time one publish together.
 *
 * Connection flags:
 *   -b N  connect from 127.0.0.N, N+1, ... (one address for every 10,000
 *         connections), so that the ephemeral ports of one address do not
 *         limit how many connections reach one server port
 *
 * Throughput flags:
 *   -j  send a JSON-like TEXT message of exactly -s bytes of UTF-8 (made the
 *       same way every run) instead of binary filler, and check the first
 *       reply on every connection against it
 *   -z  offer permessage-deflate with both no_context_takeover parameters and
 *       fail unless the 101 agrees.  Both sides then compress every message
 *       on its own, so one frame, deflated once (raw DEFLATE, sync flush, the
 *       00 00 FF FF tail cut, RSV1 set), is valid to send again and again.
 *       Replies are counted as usual; their payload sizes are summed for the
 *       server's compression ratio, and each connection's first reply is
 *       inflated and compared (with -j).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* RFC 6455's example key: a fixed key keeps the handshake prebuilt, and its
 * accept value is known without SHA-1 in here. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define HS_MAX 4096

enum { CONNECTING, HANDSHAKE, OPEN, CLOSED };
enum { ECHO, SUB, PUB };
enum { THROUGHPUT, LATENCY, CONNECT, FANOUT, SCALE };

struct conn {
  int fd, state, role, want_out;
  char *hs;              /* the 101 response while it is being read */
  size_t hs_len;
  uint8_t hdr[14];       /* a frame header split across two reads */
  uint8_t hdr_len, opcode, fin;
  uint8_t msg_opcode, msg_rsv1;  /* of the message being received */
  uint64_t msg_bytes;    /* its payload bytes so far (all its frames) */
  uint64_t skip;         /* payload bytes of the current frame still to skip */
  uint64_t unsent;       /* queued bytes not yet taken by the kernel */
  size_t phase;          /* offset of the next byte within the repeating frame */
  uint64_t received;     /* data messages received */
  uint32_t seq;          /* scale: the latest message number received */
  uint8_t seq_bytes[4], seq_len;     /* its first payload bytes, as they come */
  uint8_t ping[125], ping_len;       /* a ping's payload, for the pong */
  /* -j: the first reply, kept to check it (NULL once checked) */
  uint8_t *first, mask[4], masked, capturing;
  size_t first_len, frame_start;
};

static struct {
  int mode, port, conns, inflight, size, samples, pending_max, json, deflate, source, publisher;
  double seconds, warmup;
} opt = {THROUGHPUT, 0, 64, 16, 32, 20000, 256, 0, 0, 0, 0, 3, 1};

/* -b: connections per source address (an address has about 28,000 ports) */
#define PER_SOURCE 10000

static int ep;
static struct conn *conns;
static int nconns, launched, pending, opened, failed, lost;
static uint8_t *batch;             /* `inflight` copies of the client frame */
static size_t frame_len, batch_len;
static uint8_t rbuf[1 << 18];
static int stdin_closed;

/* -j and -z */
static uint8_t *message;           /* the message's text (or filler) */
static size_t wire_len;            /* its payload length on the wire (deflated with -z) */
static size_t first_max;           /* room kept for a connection's first reply */
static int verified;               /* connections whose first reply matched */
static uint64_t reply_bytes, compressed_replies;
static char extensions[256];       /* what the first 101 said in Sec-WebSocket-Extensions */

/* throughput and fan-out counters */
static uint64_t messages, delivered, published, completed;
static uint32_t *ring;             /* fan-out: subscribers that got message n */
static int ring_len, syncing, subs_seen;
static struct conn *publisher;
/* latency */
static double sent_at, *rtts;
static int rtt_count, round_trips;
/* scale: the message watched for, and how many subscribers have it */
static uint32_t target;
static int reached, subscribers;
static double first_at;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("{\"error\":\"");
  vprintf(fmt, ap);
  printf("\"}\n");
  va_end(ap);
  exit(1);
}

/* xorshift32 with a fixed seed: the same "random" JSON on every run */
static uint32_t next_random(void) {
  static uint32_t x = 2463534242u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

/* -j: a JSON array of user records, as an API might send, exactly `size`
 * bytes of UTF-8.  A fixed-seed generator makes it the same on every run. */
static void make_json(uint8_t *out, size_t size) {
  static const char *names[][2] = {
      {"Ana Souza", "ana.souza"},         {"Mei Chen", "mei.chen"},
      {"José Álvarez", "jose.alvarez"},   {"Zoë Müller", "zoe.muller"},
      {"Łukasz Wróbel", "lukasz.wrobel"}, {"Priya Nair", "priya.nair"},
      {"Søren Ødegård", "soren.odegard"}, {"Omar Haddad", "omar.haddad"},
      {"Emma Wilson", "emma.wilson"},     {"Yuki Tanaka", "yuki.tanaka"},
      {"Chidi Okafor", "chidi.okafor"},   {"Léa Dubois", "lea.dubois"},
      {"Ivan Petrov", "ivan.petrov"},     {"Sara Rossi", "sara.rossi"},
      {"Noah Smith", "noah.smith"},       {"María García", "maria.garcia"}};
  static const char *roles[] = {"viewer", "editor", "admin", "owner"};
  static const char *tags[] = {"beta", "eu", "us", "mobile", "trial", "pro", "staff", "api"};
  static const char *words[] = {"the", "quick", "report", "was", "sent", "to", "all", "team",
                                "members", "before", "noon", "and", "reviewed", "again"};
  char rec[512];
  size_t len = 0;
  long id = 100231, t = 1714557600;    /* 2024-05-01T10:00:00Z */
  out[len++] = '[';
  for (;;) {
    /* drawn one by one: the order of function arguments is unspecified */
    const char **name = names[next_random() % 16], *role = roles[next_random() % 4];
    const char *active = next_random() % 5 ? "true" : "false";
    unsigned score = next_random() % 10000, ms = next_random() % 1000;
    const char *tag1 = tags[next_random() % 8], *tag2 = tags[next_random() % 8];
    t += 17 + next_random() % 3600;
    time_t tt = t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int n = snprintf(rec, sizeof rec,
                     "%s{\"id\":%ld,\"name\":\"%s\",\"email\":\"%s@example.com\",\"role\":\"%s\","
                     "\"active\":%s,\"score\":%u.%02u,\"tags\":[\"%s\",\"%s\"],"
                     "\"created\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"}",
                     len > 1 ? "," : "", id, name[0], name[1], role, active, score / 100, score % 100,
                     tag1, tag2, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ms);
    if (len + n + 1 > size) break;
    memcpy(out + len, rec, n);
    len += n;
    id++;
  }
  /* Fill the rest with one last record holding a note of plain words. */
  int n = snprintf(rec, sizeof rec, "%s{\"id\":%ld,\"note\":\"", len > 1 ? "," : "", id);
  if (len + n + 3 <= size) {
    memcpy(out + len, rec, n);
    len += n;
    while (len < size - 3) {
      const char *word = words[next_random() % 14];
      for (size_t i = 0; word[i] && len < size - 3; i++) out[len++] = word[i];
      if (len < size - 3) out[len++] = ' ';
    }
    memcpy(out + len, "\"}", 2);
    len += 2;
  }
  while (len < size - 1) out[len++] = ' ';
  out[len++] = ']';
}

/* -z: the message deflated on its own, as RFC 7692 §7.2.1 says: raw DEFLATE
 * ended by a sync flush, whose empty stored block (00 00 FF FF) is cut off. */
static uint8_t *deflate_message(size_t *out_len) {
  z_stream zs = {0};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    die("deflateInit2 failed");
  size_t cap = deflateBound(&zs, opt.size) + 16;
  uint8_t *out = malloc(cap);
  zs.next_in = message;
  zs.avail_in = opt.size;
  zs.next_out = out;
  zs.avail_out = cap;
  if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK || zs.avail_in) die("deflate failed");
  size_t n = cap - zs.avail_out;
  deflateEnd(&zs);
  if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4)) die("deflate output lacks the sync tail");
  *out_len = n - 4;
  return out;
}

/* One masked frame of the message, repeated `inflight` times: binary filler
 * by default, text with -j, compressed (RSV1) with -z. */
static void build_batch(void) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t head[14];
  message = malloc(opt.size + 1);
  if (!message) die("out of memory");
  if (opt.json) make_json(message, opt.size);
  else for (int i = 0; i < opt.size; i++) message[i] = 'a' + i % 26;
  const uint8_t *payload = message;
  wire_len = opt.size;
  if (opt.deflate) payload = deflate_message(&wire_len);
  first_max = opt.size + opt.size / 8 + 1024;   /* a reply may deflate to more than it was */
  size_t h = 0, n = wire_len;
  head[h++] = (opt.json ? 0x81 : 0x82) | (opt.deflate ? 0x40 : 0);
  if (n < 126) {
    head[h++] = 0x80 | n;
  } else if (n < 65536) {
    head[h++] = 0x80 | 126;
    head[h++] = n >> 8;
    head[h++] = n;
  } else {
    head[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) head[h++] = (uint64_t)n >> (8 * i);
  }
  memcpy(head + h, mask, 4);
  h += 4;
  frame_len = h + n;
  batch_len = frame_len * opt.inflight;
  batch = malloc(batch_len);
  if (!batch) die("out of memory");
  memcpy(batch, head, h);
  for (size_t i = 0; i < n; i++) batch[h + i] = payload[i] ^ mask[i % 4];
  for (int i = 1; i < opt.inflight; i++) memcpy(batch + i * frame_len, batch, frame_len);
}

static void set_events(struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct conn *c) {
  if (c->state == CLOSED) return;
  if (c->state == OPEN) lost++;
  else { pending--; failed++; }
  close(c->fd);
  free(c->hs);
  free(c->first);
  c->hs = NULL;
  c->first = NULL;
  c->state = CLOSED;
}

/* Write queued frames straight from the prebuilt batch.  The outgoing stream
 * is the frame repeated forever and never more than `inflight` frames are
 * queued, so at most two slices of the batch cover it. */
static void flush(struct conn *c) {
  while (c->unsent && c->state == OPEN) {
    struct iovec iov[2];
    size_t first = batch_len - c->phase;
    if (first > c->unsent) first = c->unsent;
    iov[0] = (struct iovec){batch + c->phase, first};
    iov[1] = (struct iovec){batch, c->unsent - first};
    ssize_t n = writev(c->fd, iov, c->unsent > first ? 2 : 1);
    if (n < 0) {
      if (errno == EAGAIN) {
        if (!c->want_out) set_events(c, EPOLLIN | EPOLLOUT);
        c->want_out = 1;
      } else {
        drop(c);
      }
      return;
    }
    c->unsent -= n;
    c->phase = (c->phase + n) % frame_len;
  }
  if (c->want_out && c->state == OPEN) set_events(c, EPOLLIN);
  c->want_out = 0;
}

static void queue_frames(struct conn *c, uint64_t n) { c->unsent += n * frame_len; }

static void start_connect(struct conn *c) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  pending++;
  c->state = CONNECTING;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket() failed: raise ulimit -n");
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.source) {
    /* The port is chosen at connect(), per destination, not at bind(). */
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f000000u + opt.source + (uint32_t)(c - conns) / PER_SOURCE);
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&from, sizeof from) < 0) die("bind to a source address failed");
  }
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    drop(c);
    return;
  }
  /* The handshake request goes out once the socket is writable. */
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void send_handshake(struct conn *c) {
  static const char *paths[] = {"/", "/fanout", "/publish"};
  char req[512];
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n",
                   paths[c->role], opt.port,
                   opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "client_no_context_takeover; server_no_context_takeover\r\n"
                               : "");
  /* A fresh socket's send buffer always takes a request this small. */
  if (err || write(c->fd, req, n) != n) {
    drop(c);
    return;
  }
  c->state = HANDSHAKE;
  c->hs = malloc(HS_MAX + 1);
  c->hs_len = 0;
  set_events(c, EPOLLIN);
}

/* -z: the 101 must agree to permessage-deflate; its answer is kept for the
 * result line.  With nothing offered, nothing may be agreed. */
static void check_extensions(const char *hs) {
  const char *h = strcasestr(hs, "\r\nSec-WebSocket-Extensions:");
  char value[sizeof extensions] = "";
  if (h) {
    h += strlen("\r\nSec-WebSocket-Extensions:");
    while (*h == ' ' || *h == '\t') h++;
    size_t n = strcspn(h, "\r\n");
    if (n >= sizeof value) n = sizeof value - 1;
    for (size_t i = 0; i < n; i++) value[i] = h[i] == '"' || h[i] == '\\' ? '\'' : h[i];
    value[n] = 0;
  }
  if (opt.deflate && strncasecmp(value, "permessage-deflate", 18))
    die("the server did not agree to permessage-deflate (Sec-WebSocket-Extensions: %s)",
        h ? value : "none");
  if (!opt.deflate && h) die("the server agreed to an extension nobody offered: %s", value);
  if (!extensions[0]) strcpy(extensions, value);
}

static void on_open(struct conn *c) {
  pending--;
  opened++;
  if (opt.json || opt.deflate) check_extensions(c->hs);
  free(c->hs);
  c->hs = NULL;
  c->state = OPEN;
  if (opt.json && opt.mode == THROUGHPUT) {
    c->first = malloc(first_max);
    if (!c->first) die("out of memory");
  }
}

/* -j: a connection's first reply must be the message, as text, and inflate to
 * it when it came compressed. */
static void check_first_reply(struct conn *c) {
  uint8_t *text = c->first;
  size_t len = c->first_len;
  if (c->msg_opcode != 1) die("the first reply is not a text message (opcode %d)", c->msg_opcode);
  if (c->msg_rsv1) {
    if (!opt.deflate) die("a compressed reply, but no compression was agreed");
    z_stream zs = {0};
    if (inflateInit2(&zs, -15) != Z_OK) die("inflateInit2 failed");
    memcpy(c->first + c->first_len, "\x00\x00\xff\xff", 4);
    text = malloc(opt.size + 1);
    zs.next_in = c->first;
    zs.avail_in = c->first_len + 4;
    zs.next_out = text;
    zs.avail_out = opt.size + 1;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    len = opt.size + 1 - zs.avail_out;
    inflateEnd(&zs);
    if (rc != Z_OK && rc != Z_STREAM_END) die("the first reply does not inflate (zlib error %d)", rc);
    if (zs.avail_in) die("the first reply inflates to more than %d bytes", opt.size);
  }
  if (len != (size_t)opt.size || memcmp(text, message, len))
    die("the first reply differs from the message sent (%zu bytes, %s)", len,
        c->msg_rsv1 ? "inflated" : "not compressed");
  if (text != c->first) free(text);
  free(c->first);
  c->first = NULL;
  verified++;
}

static void print_reached(void) {
  printf("{\"seq\":%u,\"reached\":%d,\"subscribers\":%d,\"t_first\":%.6f,\"t\":%.6f,\"lost\":%d}\n",
         target, reached, subscribers, first_at, now(), lost);
  fflush(stdout);
}

/* scale: a subscriber's message carries its number in its first four bytes;
 * messages come in order, so the latest number tells which it has. */
static void on_numbered(struct conn *c) {
  if (c->role != SUB || c->seq_len < 4) return;
  uint32_t seq = (uint32_t)c->seq_bytes[0] << 24 | c->seq_bytes[1] << 16 | c->seq_bytes[2] << 8 |
                 c->seq_bytes[3];
  if (seq <= c->seq) return;
  int had = c->seq >= target;
  c->seq = seq;
  if (had || seq < target) return;
  if (!reached++) first_at = now();
  if (reached == subscribers) print_reached();
}

static void on_message(struct conn *c) {
  uint64_t r = ++c->received;
  if (opt.mode == THROUGHPUT) {
    if (c->first) check_first_reply(c);
    messages++;
    reply_bytes += c->msg_bytes;
    compressed_replies += c->msg_rsv1;
    c->msg_bytes = 0;
    queue_frames(c, 1);
  } else if (opt.mode == LATENCY) {
    double t = now();
    if (round_trips++ >= opt.samples / 10) rtts[rtt_count++] = (t - sent_at) * 1e6;
    if (round_trips < opt.samples + opt.samples / 10) {
      sent_at = t;
      queue_frames(c, 1);
    }
  } else if (opt.mode == SCALE) {
    on_numbered(c);
  } else if (c->role == SUB) {
    delivered++;
    if (syncing) {
      subs_seen += r == 1;
      return;
    }
    /* Subscribers get messages in publish order, so a subscriber's r-th
     * message is publication r; the oldest one leaves the window once all
     * subscribers have it. */
    if (++ring[r % ring_len] < (uint32_t)(nconns - 1)) return;
    while (ring[(completed + 1) % ring_len] == (uint32_t)(nconns - 1)) {
      ring[(completed + 1) % ring_len] = 0;
      completed++;
    }
    uint64_t room = opt.inflight - (published - completed);
    queue_frames(publisher, room);
    published += room;
  }
}

static uint64_t frame_payload_len(const uint8_t *h) {
  uint8_t len7 = h[1] & 0x7f;
  if (len7 == 126) return (uint64_t)h[2] << 8 | h[3];
  if (len7 == 127) {
    uint64_t n = 0;
    for (int i = 2; i < 10; i++) n = n << 8 | h[i];
    return n;
  }
  return len7;
}

/* Header size once its first two bytes are known; the mask bit is honoured
 * because the raw echo server sends our masked frames back unchanged. */
static size_t header_len(const uint8_t *h) {
  uint8_t len7 = h[1] & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
}

/* A held connection must answer the server's keepalive pings, or an idle
 * timeout ends it.  Pongs are small and rare, so they are written at once. */
static void pong(struct conn *c) {
  static const uint8_t mask[4] = {0x1b, 0x6e, 0x9a, 0x42};
  uint8_t f[6 + sizeof c->ping];
  f[0] = 0x8a;
  f[1] = 0x80 | c->ping_len;
  memcpy(f + 2, mask, 4);
  for (int i = 0; i < c->ping_len; i++) f[6 + i] = c->ping[i] ^ mask[i % 4];
  c->ping_len = 0;
  if (c->unsent || write(c->fd, f, 6 + f[1] - 0x80) < 0) return;   /* lost: the next ping asks again */
}

static void frame_done(struct conn *c) {
  if (c->capturing && c->masked) {     /* the raw echo sends our masked frames back */
    for (size_t i = c->frame_start; i < c->first_len; i++)
      c->first[i] ^= c->mask[(i - c->frame_start) % 4];
  }
  c->capturing = 0;
  if (c->opcode == 8) drop(c);            /* the server closed */
  else if (c->opcode == 9) pong(c);
  else if (c->opcode < 8 && c->fin) on_message(c);
}

/* scale: the first bytes of a subscriber's message are its number */
static int wants_seq(const struct conn *c) {
  return opt.mode == SCALE && c->role == SUB && c->opcode < 8 && c->seq_len < 4;
}

static void parse(struct conn *c, const uint8_t *p, const uint8_t *end) {
  while (p < end && c->state == OPEN) {
    if (c->skip) {
      uint64_t n = (uint64_t)(end - p) < c->skip ? (uint64_t)(end - p) : c->skip;
      if (c->capturing) {
        if (c->first_len + n + 4 > first_max) die("the first reply is longer than %zu bytes", first_max);
        memcpy(c->first + c->first_len, p, n);
        c->first_len += n;
      }
      if (c->opcode == 9) {                /* at most 125 bytes, checked with the header */
        memcpy(c->ping + c->ping_len, p, n);
        c->ping_len += n;
      } else if (wants_seq(c)) {
        size_t take = n < 4u - c->seq_len ? n : 4u - c->seq_len;
        memcpy(c->seq_bytes + c->seq_len, p, take);
        c->seq_len += take;
      }
      p += n;
      if (!(c->skip -= n)) frame_done(c);
      continue;
    }
    const uint8_t *h = p;
    if (c->hdr_len || end - p < 2 || (size_t)(end - p) < header_len(p)) {
      for (;;) {    /* slow path: gather the header bytes into c->hdr */
        size_t need = c->hdr_len < 2 ? 2 : header_len(c->hdr);
        if (c->hdr_len >= need) break;
        if (p == end) return;
        c->hdr[c->hdr_len++] = *p++;
      }
      h = c->hdr;
      c->hdr_len = 0;
    } else {
      p += header_len(h);
    }
    c->opcode = h[0] & 0x0f;
    c->fin = h[0] >> 7;
    c->skip = frame_payload_len(h);
    if (c->opcode == 9 && c->skip > sizeof c->ping) {
      drop(c);                            /* RFC 6455 5.5: control frames carry at most 125 bytes */
      return;
    }
    if (c->opcode < 8) {
      if (c->opcode) {                    /* a message's first frame */
        c->msg_opcode = c->opcode;
        c->msg_rsv1 = (h[0] & 0x40) != 0;
        c->seq_len = 0;
      }
      c->msg_bytes += c->skip;
      if (c->first) {
        c->capturing = 1;
        c->frame_start = c->first_len;
        c->masked = h[1] >> 7;
        if (c->masked) memcpy(c->mask, h + header_len(h) - 4, 4);
      }
    }
    if (!c->skip) frame_done(c);
  }
}

/* Inside a payload nobody keeps, let the kernel drop the bytes: MSG_TRUNC on a
 * TCP socket discards them without copying, so a 1 MiB reply costs the
 * generator no copy and the large-message scenario measures the server. */
static int discard_payload(struct conn *c) {
  if (c->state != OPEN || !c->skip || c->capturing || c->opcode == 9 || wants_seq(c)) return 0;
  size_t want = c->skip < (1u << 30) ? (size_t)c->skip : (1u << 30);
  ssize_t n = recv(c->fd, NULL, want, MSG_TRUNC | MSG_DONTWAIT);
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN) drop(c);
    return 1;
  }
  if (!(c->skip -= (uint64_t)n)) frame_done(c);
  return 1;
}

static void on_readable(struct conn *c) {
  if (discard_payload(c)) {
    if (c->unsent && !c->want_out) flush(c);
    return;
  }
  ssize_t n = read(c->fd, rbuf, sizeof rbuf);
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN) drop(c);
    return;
  }
  const uint8_t *p = rbuf;
  if (c->state == HANDSHAKE) {
    size_t old = c->hs_len, take = (size_t)n < HS_MAX - old ? (size_t)n : HS_MAX - old;
    memcpy(c->hs + old, rbuf, take);
    c->hs_len += take;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs + (old > 3 ? old - 3 : 0), "\r\n\r\n");
    if (!end) {
      if (c->hs_len == HS_MAX) drop(c);
      return;
    }
    if (strncmp(c->hs, "HTTP/1.1 101", 12) || !strstr(c->hs, WS_ACCEPT)) {
      drop(c);
      return;
    }
    p = rbuf + (end + 4 - c->hs - old);   /* frames may follow the 101 */
    on_open(c);
  }
  parse(c, p, rbuf + n);
  if (c->unsent && !c->want_out) flush(c);
}

/* scale: one command from the harness (see the top of this file) */
static void command(const char *cmd) {
  unsigned k;
  if (sscanf(cmd, "watch %u", &k) == 1 && k > 0) {
    target = k;
    reached = 0;
    first_at = 0;
    for (int i = 0; i < nconns; i++) {
      reached += conns[i].role == SUB && conns[i].state == OPEN && conns[i].seq >= k;
    }
    if (reached) first_at = now();
    printf("{\"watching\":%u}\n", k);
    if (reached == subscribers) print_reached();
    fflush(stdout);
  } else if (sscanf(cmd, "publish %u", &k) == 1 && k > 0) {
    static const uint8_t mask[4] = {0x5c, 0x21, 0xe3, 0x07};
    uint8_t f[6 + 125];
    if (!publisher || publisher->state != OPEN) die("publish: no open publisher here (-P)");
    f[0] = 0x82;
    f[1] = 0x80 | opt.size;
    memcpy(f + 2, mask, 4);
    for (int i = 0; i < opt.size; i++) {
      uint8_t b = i < 4 ? (uint8_t)(k >> (24 - 8 * i)) : (uint8_t)('a' + i % 26);
      f[6 + i] = b ^ mask[i % 4];
    }
    double t = now();
    if (write(publisher->fd, f, 6 + opt.size) != 6 + opt.size) die("publish: the write failed");
    printf("{\"published\":%u,\"t\":%.6f}\n", k, t);
    fflush(stdout);
  } else if (!strcmp(cmd, "status")) {
    print_reached();
  } else {
    die("unknown command: %.40s", cmd);
  }
}

/* stdin: commands, one a line, in scale mode; its end means the harness is done */
static void on_stdin(void) {
  static char line[256];
  static size_t len;
  ssize_t n = read(0, line + len, sizeof line - 1 - len);
  if (n <= 0) {
    stdin_closed = 1;
    return;
  }
  len += n;
  char *start = line, *eol;
  while ((eol = memchr(start, '\n', line + len - start))) {
    *eol = 0;
    if (opt.mode == SCALE) command(start);
    start = eol + 1;
  }
  len = line + len - start;
  memmove(line, start, len);
  if (len == sizeof line - 1) len = 0;   /* no command is that long */
}

static void on_event(struct conn *c, uint32_t events) {
  if (!c) {
    on_stdin();
    return;
  }
  if (c->state == CONNECTING) send_handshake(c);
  else if (c->state != CLOSED && events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
  if (c->state == OPEN && events & EPOLLOUT) flush(c);
}

static int all_settled(void) { return launched == nconns && pending == 0; }
static int latency_done(void) { return rtt_count == opt.samples || lost; }
static int all_subscribed(void) { return subs_seen == nconns - 1; }
static int harness_done(void) { return stdin_closed; }

/* Run the event loop until done() holds or the clock passes deadline;
 * returns whether done() held. */
static int run_until(double deadline, int (*done)(void)) {
  struct epoll_event evs[512];
  for (;;) {
    while (launched < nconns && pending < opt.pending_max) start_connect(&conns[launched++]);
    if (done && done()) return 1;
    double left = deadline - now();
    if (left <= 0) return 0;
    int n = epoll_wait(ep, evs, 512, isinf(left) ? -1 : (int)(left * 1000) + 1);
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    if (publisher && publisher->unsent && !publisher->want_out) flush(publisher);
  }
}

/* Open n connections with the given role, the last one with role_of_last. */
static void open_all(int n, int role, int role_of_last) {
  nconns = n;
  conns = calloc(n, sizeof *conns);
  for (int i = 0; i < n; i++) conns[i].role = i == n - 1 ? role_of_last : role;
  if (!run_until(now() + 60 + n / 1000, all_settled)) die("timed out with %d of %d open", opened, n);
  if (failed) die("%d of %d connections failed to open", failed, n);
}

static void close_all(void) {
  /* Reset instead of FIN so thousands of sockets do not linger in TIME_WAIT. */
  struct linger lg = {1, 0};
  for (int i = 0; i < nconns; i++) {
    if (conns[i].state == CLOSED) continue;
    setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(conns[i].fd);
  }
}

/* Closes a result line.  `cpu` above is the share of a core used while
 * measuring (near 1 means the generator was the limit); cpu_s is all CPU time
 * so far, which the harness uses to tell its own load from other processes'. */
static void end_result(int errors) {
  printf(",\"cpu_s\":%.3f,\"errors\":%d}\n", cpu_seconds(), errors);
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void throughput(void) {
  build_batch();
  open_all(opt.conns, ECHO, ECHO);
  for (int i = 0; i < nconns; i++) {
    queue_frames(&conns[i], opt.inflight);
    flush(&conns[i]);
  }
  run_until(now() + opt.warmup, NULL);
  double t0 = now(), cpu0 = cpu_seconds();
  uint64_t m0 = messages, b0 = reply_bytes, z0 = compressed_replies;
  run_until(t0 + opt.seconds, NULL);
  double dt = now() - t0, cpu = (cpu_seconds() - cpu0) / dt;
  uint64_t m = messages - m0;
  /* messages_total: echoes since the first one, warm-up included, to set against the server's
   * CPU time over the whole run */
  printf("{\"mode\":\"throughput\",\"conns\":%d,\"inflight\":%d,\"size\":%d,\"seconds\":%.3f,"
         "\"messages\":%lu,\"messages_total\":%lu,\"msg_per_s\":%.0f,\"mb_per_s\":%.2f,\"cpu\":%.3f",
         opt.conns, opt.inflight, opt.size, dt, (unsigned long)m, (unsigned long)messages, m / dt,
         m * (double)opt.size / dt / 1e6, cpu);
  if (opt.json) {
    /* server_ratio: reply payload bytes on the wire over the bytes they carry */
    if (verified < opened) die("only %d of %d connections got a reply to check", verified, opened);
    printf(",\"text\":true,\"deflate\":%s,\"extensions\":\"%s\",\"client_frame_bytes\":%zu,"
           "\"client_ratio\":%.4f,\"reply_bytes_per_msg\":%.1f,\"server_ratio\":%.4f,"
           "\"compressed_share\":%.4f,\"verified\":%d",
           opt.deflate ? "true" : "false", extensions, wire_len, (double)wire_len / opt.size,
           m ? (double)(reply_bytes - b0) / m : 0, m ? (double)(reply_bytes - b0) / m / opt.size : 0,
           m ? (double)(compressed_replies - z0) / m : 0, verified);
  }
  end_result(lost);
}

static void latency(void) {
  opt.inflight = 1;
  build_batch();
  open_all(1, ECHO, ECHO);
  rtts = malloc(opt.samples * sizeof *rtts);
  double cpu0 = cpu_seconds(), t0 = now();
  sent_at = t0;
  queue_frames(&conns[0], 1);
  flush(&conns[0]);
  if (!run_until(t0 + 120, latency_done) || lost) die("latency run did not finish");
  double cpu = (cpu_seconds() - cpu0) / (now() - t0);
  qsort(rtts, rtt_count, sizeof *rtts, cmp_double);
  printf("{\"mode\":\"latency\",\"size\":%d,\"samples\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"max_us\":%.1f,\"cpu\":%.3f",
         opt.size, rtt_count, rtts[rtt_count / 2], rtts[(int)(rtt_count * 0.99)],
         rtts[rtt_count - 1], cpu);
  end_result(0);
}

static void connect_idle(void) {
  double t0 = now(), cpu0 = cpu_seconds();
  open_all(opt.conns, ECHO, ECHO);
  double dt = now() - t0, cpu = (cpu_seconds() - cpu0) / dt;
  printf("{\"mode\":\"connect\",\"conns\":%d,\"open_s\":%.3f,\"conn_per_s\":%.0f,\"cpu\":%.3f",
         opened, dt, opened / dt, cpu);
  end_result(0);
  /* Hold the connections while the harness reads the server's memory; stdin
   * that cannot be polled (/dev/null) means nobody is waiting. */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0) run_until(INFINITY, harness_done);
  printf("{\"still_open\":%d}\n", opened - lost);
}

static void fanout(void) {
  build_batch();
  open_all(opt.conns + 1, SUB, PUB);
  publisher = &conns[nconns - 1];
  /* The server may register a subscriber a little after its 101, so publish
   * single messages until every subscriber has seen one, let the stragglers
   * drain, and only then start counting. */
  syncing = 1;
  double give_up = now() + 20;
  while (!all_subscribed()) {
    if (now() > give_up || lost) die("only %d of %d subscribers got a message", subs_seen, nconns - 1);
    if (!publisher->unsent) queue_frames(publisher, 1);
    run_until(now() + 0.05, all_subscribed);
  }
  run_until(now() + 0.3, NULL);
  syncing = 0;
  for (int i = 0; i < nconns; i++) conns[i].received = 0;
  ring_len = 2 * opt.inflight;
  ring = calloc(ring_len, sizeof *ring);
  queue_frames(publisher, opt.inflight);
  published = opt.inflight;
  run_until(now() + opt.warmup, NULL);
  double t0 = now(), cpu0 = cpu_seconds();
  uint64_t c0 = completed, d0 = delivered;
  run_until(t0 + opt.seconds, NULL);
  double dt = now() - t0, cpu = (cpu_seconds() - cpu0) / dt;
  int stray = 0;   /* a subscriber ahead of the publisher would break the count */
  for (int i = 0; i < nconns - 1; i++) stray += conns[i].received > published;
  /* messages_total: deliveries since the first, as in throughput mode */
  printf("{\"mode\":\"fanout\",\"subscribers\":%d,\"inflight\":%d,\"size\":%d,\"seconds\":%.3f,"
         "\"pub_per_s\":%.0f,\"delivered_per_s\":%.0f,\"messages_total\":%lu,\"cpu\":%.3f",
         nconns - 1, opt.inflight, opt.size, dt, (completed - c0) / dt, (delivered - d0) / dt,
         (unsigned long)delivered, cpu);
  end_result(lost + stray);
}

static void scale(void) {
  if (opt.size < 4 || opt.size > 125) die("scale: -s must be 4 to 125 bytes");
  subscribers = opt.conns;
  double t0 = now(), cpu0 = cpu_seconds();
  open_all(opt.conns + opt.publisher, SUB, opt.publisher ? PUB : SUB);
  double t1 = now();
  if (opt.publisher) publisher = &conns[nconns - 1];
  /* t0 and t1 let the harness time the opening of several generators at once */
  printf("{\"mode\":\"scale\",\"conns\":%d,\"open_s\":%.3f,\"conn_per_s\":%.0f,\"t0\":%.6f,"
         "\"t1\":%.6f,\"cpu\":%.3f",
         opened, t1 - t0, opened / (t1 - t0), t0, t1, (cpu_seconds() - cpu0) / (t1 - t0));
  end_result(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("scale mode takes commands on stdin: a pipe");
  run_until(INFINITY, harness_done);
  printf("{\"still_open\":%d}\n", opened - lost);
}

int main(int argc, char **argv) {
  int o;
  static const char *modes[] = {"throughput", "latency", "connect", "fanout", "scale"};
  opt.mode = -1;
  while ((o = getopt(argc, argv, "m:p:c:f:s:d:w:n:k:b:jzP")) != -1) {
    switch (o) {
      case 'm':
        for (int i = 0; i < 5; i++) if (!strcmp(optarg, modes[i])) opt.mode = i;
        break;
      case 'p': opt.port = atoi(optarg); break;
      case 'c': opt.conns = atoi(optarg); break;
      case 'f': opt.inflight = atoi(optarg); break;
      case 's': opt.size = atoi(optarg); break;
      case 'd': opt.seconds = atof(optarg); break;
      case 'w': opt.warmup = atof(optarg); break;
      case 'n': opt.samples = atoi(optarg); break;
      case 'k': opt.pending_max = atoi(optarg); break;
      case 'b': opt.source = atoi(optarg); break;
      case 'P': opt.publisher = 1; break;
      case 'j': opt.json = 1; break;
      case 'z': opt.deflate = 1; break;
      default:
        fprintf(stderr, "usage: loadgen -m throughput|latency|connect|fanout|scale -p PORT "
                        "[-c N] [-f N] [-s BYTES] [-d S] [-w S] [-n N] [-k N] [-b N] [-j] [-z] [-P]\n");
        return 2;
    }
  }
  if (opt.mode < 0 || !opt.port || opt.conns < 1 || opt.inflight < 1 || opt.size < 0 ||
      opt.source < 0 || opt.source + (opt.conns + opt.publisher) / PER_SOURCE > 254 ||
      opt.samples < 10 || ((opt.json || opt.deflate) && (opt.mode != THROUGHPUT || opt.size < 64)))
    die("bad arguments");
  signal(SIGPIPE, SIG_IGN);   /* a peer that went away shows up as EPIPE */
  ep = epoll_create1(EPOLL_CLOEXEC);
  switch (opt.mode) {
    case THROUGHPUT: throughput(); break;
    case LATENCY: latency(); break;
    case CONNECT: connect_idle(); break;
    case FANOUT: fanout(); break;
    case SCALE: scale(); break;
  }
  close_all();
  return 0;
}
