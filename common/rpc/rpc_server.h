/* rpc_server.h: a small gRPC C-core server framework: registered unary and client-streaming
 * methods served by N worker threads sharing one completion queue, the standard health service,
 * a shared-token check, UNIMPLEMENTED for unknown methods, and the orderly shutdown of
 * docs/grpc-core.md (section 2, steps 1-10, and pitfalls 1-3).
 *
 * The application supplies a method table; each method has a handler that runs on a worker
 * thread and sees raw byte buffers (decode them with wire_decode, reply with wire_encode). One
 * worker per two calls in progress takes calls (at least 1, at most `pollers`); the others stand
 * by. A handler may block (e.g. a rate limiter), but must call rpc_server_will_wait first, so that
 * a standby worker takes its place, and should keep the wait bounded by the call deadline: a
 * blocked handler holds its worker thread.
 *
 * Ownership: rpc_server_create copies the options and the method table (the path strings and
 * `ctx` pointers are borrowed and must outlive the server). Request buffers passed to handlers
 * are borrowed for the call; a reply buffer put in rpc_reply.bb is taken over by the framework.
 *
 * Errors: rpc_server_create returns IB_EINVAL (bad option), IB_EIO (cannot bind the address or
 * read the TLS files) with ib_errmsg() naming the address or file and a HINT.
 *
 * Thread-safety: rpc_server_health_set may be called from any thread at any time;
 * rpc_server_stop and rpc_server_destroy from one controlling thread only, once. */
#ifndef IB_RPC_SERVER_H
#define IB_RPC_SERVER_H

#include <stddef.h>

#include <grpc/grpc.h>

typedef struct rpc_server rpc_server;

typedef enum rpc_kind {
  RPC_UNARY = 0,         /* one request message, one reply */
  RPC_CLIENT_STREAM = 1, /* many request messages, one reply at the end */
} rpc_kind;

/* What a handler answers. The framework sends `bb` (taken over, may be NULL for an empty
 * message) when status is GRPC_STATUS_OK, and `msg` as the status details otherwise. */
typedef struct rpc_reply {
  grpc_status_code status;
  char msg[384];
  grpc_byte_buffer *bb;
} rpc_reply;

/* Sets rep->status and a printf-formatted rep->msg (helper for handlers). Returns status. */
grpc_status_code rpc_reply_fail(rpc_reply *rep, grpc_status_code status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Per-call facts handed to handlers. */
typedef struct rpc_call_info {
  const char *path;      /* the method path */
  gpr_timespec deadline; /* the client's deadline (may be infinite) */
  void *state;           /* streams: the handler's per-call state (starts NULL; the handler frees it) */
  int cancelled;         /* streams: set on the final callback when the call failed or was cancelled */
} rpc_call_info;

/* Unary handler: `req` is the request message (never NULL). Fill `rep` (status starts OK). */
typedef void (*rpc_unary_fn)(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep);

/* Client-stream handler: called once per received message with `msg` != NULL; return 0 to keep
 * reading, or nonzero after setting rep->status (non-OK) to end the call early. Then called
 * exactly once with msg == NULL to produce the final reply (info->cancelled = 1 if the call
 * broke: the reply is then ignored, only state must be freed). The final call also follows an
 * early end, so per-call state is always released there. */
typedef int (*rpc_stream_fn)(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep);

typedef struct rpc_method {
  const char *path; /* e.g. WIRE_PATH_SAMPLE; borrowed */
  rpc_kind kind;
  rpc_unary_fn unary;   /* for RPC_UNARY */
  rpc_stream_fn stream; /* for RPC_CLIENT_STREAM */
  void *ctx;            /* borrowed, passed to the handler */
} rpc_method;

typedef struct rpc_server_opts {
  const char *bind;           /* host, e.g. "127.0.0.1" or "0.0.0.0" */
  int port;                   /* 0 = any free port (see rpc_server_port) */
  int threads;                /* worker threads sharing the CQ, 1..64 */
  long max_message_bytes;     /* receive limit; larger messages get RESOURCE_EXHAUSTED */
  const char *token;          /* NULL/"" = no token; else every call except Health needs
                                 "authorization: Bearer <token>" (UNAUTHENTICATED otherwise) */
  const char *tls_cert_path;  /* both set = TLS (PEM files); both NULL = plaintext */
  const char *tls_key_path;
  int pollers;                /* the most workers taking calls at once, 1..threads; 0 = threads */
} rpc_server_opts;

/* Creates, binds and starts a server with `methods[0..n)` plus grpc.health.v1.Health/Check
 * (health starts with "" = NOT_SERVING until rpc_server_health_set says otherwise). Requires
 * grpc_init() first. On success *out owns the running server. */
int rpc_server_create(rpc_server **out, const rpc_server_opts *opts, const rpc_method *methods, size_t n);

/* Called by a handler before anything that may wait or take long (a rate limiter or long poll,
 * a log flush, a checkpoint): gives the worker's turn at taking calls to a standby worker, so the
 * server goes on serving meanwhile. Its worker queues for a turn again after the handler returns.
 * Outside a worker thread, or called twice, it does nothing. Calling it costs a thread wakeup, so
 * call it only where a wait is likely. */
void rpc_server_will_wait(void);

/* The bound port (the chosen one when opts.port was 0). */
int rpc_server_port(const rpc_server *srv);

/* Health registry: sets `service` ("" = the whole server) to SERVING (1) or NOT_SERVING (2).
 * At most 8 names; unknown names answer NOT_FOUND. Thread-safe. */
void rpc_server_health_set(rpc_server *srv, const char *service, int serving);

/* Number of calls currently being handled (not counting posted requests). Thread-safe. */
int rpc_server_active_calls(rpc_server *srv);

/* Stops accepting calls, cancels the running ones (a handler blocked in application code must
 * be released by the application first), waits for every call context to finish, and joins
 * the workers, in the order of grpc-core.md 2.10. Idempotent. */
void rpc_server_stop(rpc_server *srv);

/* Stops (if needed) and frees the server. Accepts NULL. */
void rpc_server_destroy(rpc_server *srv);

#endif /* IB_RPC_SERVER_H */
