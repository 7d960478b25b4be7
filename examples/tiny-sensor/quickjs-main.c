/*
 * The host glue of examples/tiny-sensor on QuickJS (examples/tiny-sensor/README.md): a C program that
 * runs the sensor's bundle (dist/tiny/cxmpp-sensor.mjs, or its bytecode from qjsc) in a QuickJS
 * runtime and gives it what docs/TINY-NODE.md asks of a host:
 *
 *   send(datagram)      one UDP datagram to the gateway (a connected BSD socket: Linux, or lwIP)
 *   now()               milliseconds on a monotonic clock (clock_gettime; esp_timer_get_time on ESP32)
 *   setTimer(ms, fire)  the ONE timer: a deadline and a JS function, run by the event loop below
 *   clearTimer()
 *   random(n)           n random bytes (getrandom; esp_fill_random on ESP32)
 *   log(level, event, fields)
 *
 * plus the sensor (readSensor: a thermal zone of Linux, else a simulated thermometer), and an event
 * loop: wait in poll() for a datagram or the timer's deadline, call into JavaScript, then run QuickJS's
 * pending jobs until there are none (JS_ExecutePendingJob) — the tiny node is promise-based, and
 * QuickJS runs promise jobs only when its host asks.
 *
 * Only QuickJS's engine is used (quickjs.c, libregexp.c, libunicode.c, cutils.c, dtoa.c): no
 * quickjs-libc, no std/os modules, no eval of anything but the bundle.
 *
 * Usage: cxmpp-sensor DEVICE.cbor TO_JID [EVERY_SECONDS [RELIABLE_EVERY [COUNT]]]
 *   with the bundle built in (make BYTECODE=1) or CXMPP_BUNDLE=path/to/cxmpp-sensor.mjs.
 *   CXMPP_SENSOR=/sys/class/thermal/thermal_zone0/temp (millidegrees) is read if it exists.
 *   CXMPP_HEAP_LIMIT=bytes sets JS_SetMemoryLimit.
 *
 * Build: see the Makefile beside this file (make QUICKJS=/path/to/quickjs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "quickjs.h"

#ifdef CXMPP_SENSOR_BYTECODE
/* qjsc -c -m -s -N cxmpp_sensor -o cxmpp_sensor_bytecode.c cxmpp-sensor.mjs (the Makefile does it). */
extern const uint32_t cxmpp_sensor_size;
extern const uint8_t cxmpp_sensor[];
#endif

/* ---- the host's state: one socket, one timer ---- */

/* A wait at least this long counts as idle: the loop collects garbage first (JS_RunGC). */
#define IDLE_GC_MS 100

static int sock = -1;
static double timer_at = -1; /* the deadline on now()'s clock; -1: not armed */
static JSValue timer_fire;   /* the JS function to run then */
static int stopped = 0;
static volatile sig_atomic_t interrupted = 0;
static const char *sensor_path;
static int simulated_reads = 0;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Prints a pending exception (and its stack) to stderr. */
static void report_exception(JSContext *ctx, const char *where) {
  JSValue e = JS_GetException(ctx);
  const char *text = JS_ToCString(ctx, e);
  fprintf(stderr, "cxmpp-sensor: exception %s: %s\n", where, text ? text : "?");
  if (text) JS_FreeCString(ctx, text);
  if (JS_IsObject(e)) {
    JSValue stack = JS_GetPropertyStr(ctx, e, "stack");
    if (!JS_IsUndefined(stack)) {
      const char *s = JS_ToCString(ctx, stack);
      if (s) {
        fprintf(stderr, "%s\n", s);
        JS_FreeCString(ctx, s);
      }
    }
    JS_FreeValue(ctx, stack);
  }
  JS_FreeValue(ctx, e);
}

/* After every call into JavaScript: run the promise jobs it queued, and those they queue, to the end. */
static void run_pending_jobs(JSRuntime *rt) {
  for (;;) {
    JSContext *job_ctx;
    int r = JS_ExecutePendingJob(rt, &job_ctx);
    if (r == 0) return;
    if (r < 0) report_exception(job_ctx, "in a pending job");
  }
}

/* ---- the TinyHost functions ---- */

/* send(datagram: Uint8Array): the bytes of the view, not of its whole buffer. */
static JSValue host_send(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  size_t offset, length, per_element, size;
  JSValue buffer = JS_GetTypedArrayBuffer(ctx, argv[0], &offset, &length, &per_element);
  if (JS_IsException(buffer)) return buffer;
  uint8_t *bytes = JS_GetArrayBuffer(ctx, &size, buffer);
  JS_FreeValue(ctx, buffer);
  if (!bytes) return JS_EXCEPTION;
  /* Never throws for network conditions (TinyHost.send): a datagram that cannot go is lost. */
  if (send(sock, bytes + offset, length, 0) < 0 && errno != EAGAIN)
    fprintf(stderr, "cxmpp-sensor: send: %s\n", strerror(errno));
  return JS_UNDEFINED;
}

static JSValue host_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  return JS_NewFloat64(ctx, now_ms());
}

/* setTimer(ms, fire): replaces the pending one. */
static JSValue host_set_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  double ms;
  if (JS_ToFloat64(ctx, &ms, argv[0])) return JS_EXCEPTION;
  JS_FreeValue(ctx, timer_fire);
  timer_fire = JS_DupValue(ctx, argv[1]);
  timer_at = now_ms() + (ms > 0 ? ms : 0);
  return JS_UNDEFINED;
}

static JSValue host_clear_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  JS_FreeValue(ctx, timer_fire);
  timer_fire = JS_UNDEFINED;
  timer_at = -1;
  return JS_UNDEFINED;
}

/* A Uint8Array holding a copy of `len` bytes. */
static JSValue new_uint8_array(JSContext *ctx, const uint8_t *bytes, size_t len) {
  JSValue buffer = JS_NewArrayBufferCopy(ctx, bytes, len);
  if (JS_IsException(buffer)) return buffer;
  /* All three arguments (buffer, byteOffset, length): called from C, the constructor's argv is not
     padded with undefined up to its length as it is for a call from JavaScript. */
  JSValue args[3] = {buffer, JS_NewInt32(ctx, 0), JS_NewInt64(ctx, (int64_t)len)};
  JSValue array = JS_NewTypedArray(ctx, 3, args, JS_TYPED_ARRAY_UINT8);
  JS_FreeValue(ctx, buffer);
  return array;
}

/* random(n): the kernel's CSPRNG (on ESP32: esp_fill_random, the hardware RNG). */
static JSValue host_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  uint32_t n;
  uint8_t bytes[256];
  if (JS_ToUint32(ctx, &n, argv[0])) return JS_EXCEPTION;
  if (n > sizeof bytes) return JS_ThrowRangeError(ctx, "random: at most %zu bytes", sizeof bytes);
  for (size_t got = 0; got < n;) {
    ssize_t r = getrandom(bytes + got, n - got, 0);
    if (r < 0 && errno != EINTR) return JS_ThrowInternalError(ctx, "getrandom: %s", strerror(errno));
    if (r > 0) got += (size_t)r;
  }
  return new_uint8_array(ctx, bytes, n);
}

/* Prints `label` and `value` as one JSON line on stdout. */
static void print_json(JSContext *ctx, const char *label, JSValueConst value) {
  JSValue json = JS_JSONStringify(ctx, value, JS_UNDEFINED, JS_UNDEFINED);
  const char *text = JS_ToCString(ctx, json);
  printf("%s %s\n", label, text ? text : "?");
  fflush(stdout);
  if (text) JS_FreeCString(ctx, text);
  JS_FreeValue(ctx, json);
}

/* log(level, event, fields): the node's warnings and errors. */
static JSValue host_log(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  const char *level = JS_ToCString(ctx, argv[0]);
  const char *event = JS_ToCString(ctx, argv[1]);
  if (level && event && (strcmp(level, "warn") == 0 || strcmp(level, "error") == 0)) {
    char label[96];
    snprintf(label, sizeof label, "log %s %s", level, event);
    print_json(ctx, label, argc > 2 ? argv[2] : JS_UNDEFINED);
  }
  if (level) JS_FreeCString(ctx, level);
  if (event) JS_FreeCString(ctx, event);
  return JS_UNDEFINED;
}

/* ---- the sensor and its callbacks ---- */

/* readSensor(): °C. A thermal zone (millidegrees) where there is one, else 20.0, 20.5, ... 24.5. */
static JSValue read_sensor(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  if (sensor_path) {
    FILE *f = fopen(sensor_path, "r");
    long milli;
    if (f) {
      int ok = fscanf(f, "%ld", &milli) == 1;
      fclose(f);
      if (ok) return JS_NewFloat64(ctx, (double)milli / 1000.0);
    }
    return JS_NewFloat64(ctx, NAN); /* the sensor reports a failed reading */
  }
  return JS_NewFloat64(ctx, 20.0 + 0.5 * (simulated_reads++ % 10));
}

static void print_memory(JSRuntime *rt, const char *when) {
  JSMemoryUsage m;
  JS_ComputeMemoryUsage(rt, &m);
  printf("heap %s: memory_used_size %lld B, malloc_size %lld B, %lld objects, %lld functions\n", when,
         (long long)m.memory_used_size, (long long)m.malloc_size, (long long)m.obj_count,
         (long long)m.js_func_count);
  fflush(stdout);
}

/* onEvent(e): printed; "connected" also prints the heap, "stopped" ends the event loop. */
static JSValue on_event(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  print_json(ctx, "event", argv[0]);
  JSValue type = JS_GetPropertyStr(ctx, argv[0], "type");
  const char *t = JS_ToCString(ctx, type);
  if (t && strcmp(t, "connected") == 0) print_memory(JS_GetRuntime(ctx), "after connect");
  if (t && strcmp(t, "stopped") == 0) stopped = 1;
  if (t) JS_FreeCString(ctx, t);
  JS_FreeValue(ctx, type);
  return JS_UNDEFINED;
}

/* onStanza(s): a stanza from the network (XElement as JSON). */
static JSValue on_stanza(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  print_json(ctx, "stanza", argv[0]);
  return JS_UNDEFINED;
}

/* ---- loading ---- */

static uint8_t *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? 2 * cap : 65536;
      uint8_t *grown = realloc(buf, cap + 1);
      if (!grown) break;
      buf = grown;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    if (n == 0) break;
    len += n;
  }
  fclose(f);
  if (buf) buf[len] = 0; /* JS_Eval wants the source NUL-terminated */
  *size = len;
  return buf;
}

/* Evaluates the bundle as an ES module and returns its export `runSensor`. */
static JSValue load_run_sensor(JSContext *ctx) {
  JSValue module;
#ifdef CXMPP_SENSOR_BYTECODE
  /* Bytecode in flash: ROM_DATA reads it in place instead of copying it to RAM. */
  module = JS_ReadObject(ctx, cxmpp_sensor, cxmpp_sensor_size, JS_READ_OBJ_BYTECODE | JS_READ_OBJ_ROM_DATA);
#else
  const char *path = getenv("CXMPP_BUNDLE");
  size_t size;
  uint8_t *source = path ? read_file(path, &size) : NULL;
  if (!source) {
    fprintf(stderr, "cxmpp-sensor: set CXMPP_BUNDLE to the bundle (dist/tiny/cxmpp-sensor.mjs)\n");
    return JS_EXCEPTION;
  }
  module = JS_Eval(ctx, (const char *)source, size, "cxmpp-sensor.mjs",
                   JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  free(source);
#endif
  if (JS_IsException(module)) {
    report_exception(ctx, "compiling the bundle");
    return JS_EXCEPTION;
  }
  JSModuleDef *def = JS_VALUE_GET_PTR(module);
  if (JS_ResolveModule(ctx, module) < 0) {
    JS_FreeValue(ctx, module);
    report_exception(ctx, "resolving the bundle");
    return JS_EXCEPTION;
  }
  JSValue result = JS_EvalFunction(ctx, module); /* a promise: the module's evaluation */
  if (JS_IsException(result)) {
    report_exception(ctx, "evaluating the bundle");
    return JS_EXCEPTION;
  }
  run_pending_jobs(JS_GetRuntime(ctx));
  if (JS_IsObject(result) && JS_PromiseState(ctx, result) == JS_PROMISE_REJECTED) {
    JS_Throw(ctx, JS_PromiseResult(ctx, result));
    JS_FreeValue(ctx, result);
    report_exception(ctx, "evaluating the bundle");
    return JS_EXCEPTION;
  }
  JS_FreeValue(ctx, result);
  JSValue ns = JS_GetModuleNamespace(ctx, def);
  JSValue run = JS_GetPropertyStr(ctx, ns, "runSensor");
  JS_FreeValue(ctx, ns);
  return run;
}

/* Connects the socket to "HOST:PORT" or "[IPv6]:PORT" (the sensor's `gateway`). */
static int open_socket(const char *peer) {
  char host[256];
  const char *colon = strrchr(peer, ':');
  if (!colon || (size_t)(colon - peer) >= sizeof host) return -1;
  const char *start = peer, *end = colon;
  if (*start == '[' && end > start && end[-1] == ']') start++, end--;
  memcpy(host, start, (size_t)(end - start));
  host[end - start] = 0;
  struct addrinfo hints = {0}, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) return -1;
  int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void set_function(JSContext *ctx, JSValueConst obj, const char *name, JSCFunction *fn, int length) {
  JS_SetPropertyStr(ctx, obj, name, JS_NewCFunction(ctx, fn, name, length));
}

/* Calls `fn` with `this` and one argument, then runs the pending jobs; reports an exception. */
static void call_in(JSContext *ctx, JSValueConst fn, JSValueConst this_val, int argc, JSValueConst *argv,
                    const char *where) {
  JSValue r = JS_Call(ctx, fn, this_val, argc, argv);
  if (JS_IsException(r)) report_exception(ctx, where);
  JS_FreeValue(ctx, r);
  run_pending_jobs(JS_GetRuntime(ctx));
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DEVICE.cbor TO_JID [EVERY_SECONDS [RELIABLE_EVERY [COUNT]]]\n", argv[0]);
    return 2;
  }
  const char *path = getenv("CXMPP_SENSOR");
  if (path && access(path, R_OK) == 0) sensor_path = path;

  JSRuntime *rt = JS_NewRuntime();
  const char *limit = getenv("CXMPP_HEAP_LIMIT");
  if (limit && strtoull(limit, NULL, 10) > 0) JS_SetMemoryLimit(rt, (size_t)strtoull(limit, NULL, 10));
  /* ECMAScript 2022 is all the bundle uses: no eval beyond loading it, no Proxy, no WeakRef. */
  JSContext *ctx = JS_NewContextRaw(rt);
  JS_AddIntrinsicBaseObjects(ctx);
  JS_AddIntrinsicDate(ctx);
  JS_AddIntrinsicEval(ctx);
  JS_AddIntrinsicRegExpCompiler(ctx);
  JS_AddIntrinsicRegExp(ctx);
  JS_AddIntrinsicJSON(ctx);
  JS_AddIntrinsicMapSet(ctx);
  JS_AddIntrinsicTypedArrays(ctx);
  JS_AddIntrinsicPromise(ctx);
  timer_fire = JS_UNDEFINED;
  print_memory(rt, "empty");

  JSValue run_sensor = load_run_sensor(ctx);
  if (JS_IsException(run_sensor) || !JS_IsFunction(ctx, run_sensor)) {
    fprintf(stderr, "cxmpp-sensor: the bundle exports no runSensor\n");
    return 1;
  }
  print_memory(rt, "after load");

  size_t file_size;
  uint8_t *file = read_file(argv[1], &file_size);
  if (!file) {
    fprintf(stderr, "cxmpp-sensor: cannot read the device file %s: %s\n", argv[1], strerror(errno));
    return 1;
  }

  JSValue host = JS_NewObject(ctx);
  set_function(ctx, host, "send", host_send, 1);
  set_function(ctx, host, "now", host_now, 0);
  set_function(ctx, host, "setTimer", host_set_timer, 2);
  set_function(ctx, host, "clearTimer", host_clear_timer, 0);
  set_function(ctx, host, "random", host_random, 1);
  set_function(ctx, host, "log", host_log, 3);

  JSValue options = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, options, "to", JS_NewString(ctx, argv[2]));
  JS_SetPropertyStr(ctx, options, "every", JS_NewFloat64(ctx, argc > 3 ? atof(argv[3]) : 60));
  JS_SetPropertyStr(ctx, options, "reliableEvery", JS_NewInt32(ctx, argc > 4 ? atoi(argv[4]) : 10));
  if (argc > 5) JS_SetPropertyStr(ctx, options, "count", JS_NewInt32(ctx, atoi(argv[5])));
  set_function(ctx, options, "readSensor", read_sensor, 0);
  set_function(ctx, options, "onEvent", on_event, 1);
  set_function(ctx, options, "onStanza", on_stanza, 1);

  JSValue args[3] = {host, new_uint8_array(ctx, file, file_size), options};
  free(file);
  JSValue sensor = JS_Call(ctx, run_sensor, JS_UNDEFINED, 3, args);
  for (int i = 0; i < 3; i++) JS_FreeValue(ctx, args[i]);
  JS_FreeValue(ctx, run_sensor);
  if (JS_IsException(sensor)) {
    report_exception(ctx, "in runSensor");
    return 1;
  }
  run_pending_jobs(rt);

  /* runSensor sends nothing before the timer first fires: open the socket towards its gateway now. */
  JSValue gateway = JS_GetPropertyStr(ctx, sensor, "gateway");
  const char *peer = JS_ToCString(ctx, gateway);
  sock = peer ? open_socket(peer) : -1;
  if (sock < 0) {
    fprintf(stderr, "cxmpp-sensor: cannot reach the gateway %s\n", peer ? peer : "?");
    return 1;
  }
  printf("gateway %s\n", peer);
  fflush(stdout);
  JS_FreeCString(ctx, peer);
  JS_FreeValue(ctx, gateway);
  JSValue receive = JS_GetPropertyStr(ctx, sensor, "receive");
  JSValue stop = JS_GetPropertyStr(ctx, sensor, "stop");

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  /* The event loop: between calls into JavaScript the device waits here, in poll() (on ESP32, a
     FreeRTOS task blocked in lwIP's select(), which lets automatic light sleep run). */
  while (!stopped) {
    if (interrupted) {
      call_in(ctx, stop, sensor, 0, NULL, "in stop");
      break;
    }
    int timeout = -1;
    if (timer_at >= 0) {
      double wait = ceil(timer_at - now_ms());
      timeout = wait > 0 ? (int)wait : 0;
    }
    /* About to sleep: collect the cycles the last calls left (promise chains) now, while nothing runs,
       rather than when an allocation crosses QuickJS's threshold in the middle of a handshake. */
    if (timeout < 0 || timeout >= IDLE_GC_MS) JS_RunGC(rt);
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int ready = poll(&p, 1, timeout);
    if (ready < 0 && errno != EINTR) {
      fprintf(stderr, "cxmpp-sensor: poll: %s\n", strerror(errno));
      break;
    }
    if (ready > 0 && (p.revents & POLLIN)) {
      uint8_t datagram[1500];
      ssize_t n = recv(sock, datagram, sizeof datagram, 0);
      if (n > 0) {
        JSValue bytes = new_uint8_array(ctx, datagram, (size_t)n);
        call_in(ctx, receive, sensor, 1, &bytes, "in receive");
        JS_FreeValue(ctx, bytes);
      }
    }
    if (timer_at >= 0 && now_ms() >= timer_at) {
      JSValue fire = timer_fire; /* fire may arm the timer again: take it first */
      timer_fire = JS_UNDEFINED;
      timer_at = -1;
      call_in(ctx, fire, JS_UNDEFINED, 0, NULL, "in the timer");
      JS_FreeValue(ctx, fire);
    }
  }

  JS_RunGC(rt);
  print_memory(rt, "at the end, after JS_RunGC");
  JS_FreeValue(ctx, receive);
  JS_FreeValue(ctx, stop);
  JS_FreeValue(ctx, sensor);
  JS_FreeValue(ctx, timer_fire);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  close(sock);
  return 0;
}
