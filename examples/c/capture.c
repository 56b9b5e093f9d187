/*
 * capture.c: a capture app's loop in C, streaming through the poselink C API.
 *
 * It stands in for a MediaPipe/GStreamer app: every camera frame it "estimates"
 * a pose (a synthetic skeleton waving its arms, 33 BlazePose landmarks) and hands
 * it to the engine; every 20 ms it hands over a chunk of "microphone" audio (a
 * 440 Hz tone, 48 kHz mono PCM16). Between frames it polls the engine's events.
 * At the end it destroys the engine and prints what was sent.
 *
 *   capture [--hub ws://127.0.0.1:7700/] [--room c-demo] [--token JWT]
 *           [--frames 90] [--fps 30] [--no-audio] [--opus] [--log info]
 *           [--ca-file CA.pem]   (for a wss:// hub with a private CA)
 *
 * The last line on stdout is the summary a script can read:
 *   capture: sent P pose frames and A audio chunks (submitted P2 and A2, B bytes, ...)
 * Exit status: 0 when every frame was handed over, 1 on an error (the message
 * from poselink_last_error on stderr), 2 on a bad command line.
 *
 * Build: see the Makefile next to this file.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "poselink.h"

#define SAMPLE_RATE 48000
#define CHUNK_SAMPLES 960 /* 20 ms of 48 kHz mono */
#define CHUNK_US 20000
#define PI 3.14159265358979323846

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_until_us(uint64_t deadline_us) {
  struct timespec ts;
  ts.tv_sec = (time_t)(deadline_us / 1000000u);
  ts.tv_nsec = (long)(deadline_us % 1000000u) * 1000L;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_requested) {
  }
}

/* Prints the failed call, its status and the library's sentence; returns 1. */
static int fail(const char *call, PoselinkStatus status) {
  fprintf(stderr, "capture: %s failed: %s: %s\n", call, poselink_status_name(status),
          poselink_last_error());
  return 1;
}

/* A standing person, landmark by landmark (x, y in the image, z depth), in
 * MediaPipe BlazePose order. */
static const float BASE[POSELINK_LANDMARK_COUNT][3] = {
    {0.50f, 0.20f, -0.30f}, /* 0 nose */
    {0.51f, 0.18f, -0.29f}, {0.52f, 0.18f, -0.29f}, {0.53f, 0.18f, -0.29f}, /* left eye */
    {0.49f, 0.18f, -0.29f}, {0.48f, 0.18f, -0.29f}, {0.47f, 0.18f, -0.29f}, /* right eye */
    {0.55f, 0.19f, -0.15f}, {0.45f, 0.19f, -0.15f},                         /* ears */
    {0.51f, 0.22f, -0.27f}, {0.49f, 0.22f, -0.27f},                         /* mouth */
    {0.58f, 0.30f, -0.10f}, {0.42f, 0.30f, -0.10f},                         /* shoulders */
    {0.62f, 0.42f, -0.08f}, {0.38f, 0.42f, -0.08f},                         /* elbows */
    {0.64f, 0.53f, -0.10f}, {0.36f, 0.53f, -0.10f},                         /* wrists */
    {0.65f, 0.56f, -0.11f}, {0.35f, 0.56f, -0.11f},                         /* pinkies */
    {0.64f, 0.57f, -0.11f}, {0.36f, 0.57f, -0.11f},                         /* index fingers */
    {0.63f, 0.55f, -0.10f}, {0.37f, 0.55f, -0.10f},                         /* thumbs */
    {0.55f, 0.58f, 0.00f},  {0.45f, 0.58f, 0.00f},                          /* hips */
    {0.56f, 0.74f, 0.02f},  {0.44f, 0.74f, 0.02f},                          /* knees */
    {0.56f, 0.90f, 0.05f},  {0.44f, 0.90f, 0.05f},                          /* ankles */
    {0.56f, 0.92f, 0.07f},  {0.44f, 0.92f, 0.07f},                          /* heels */
    {0.57f, 0.94f, -0.02f}, {0.43f, 0.94f, -0.02f},                         /* foot index */
};

/* The pose estimator's output for time t (seconds): the arms wave, the body
 * sways. Written as x, y, z, visibility, presence per landmark: the layout
 * poselink_send_pose takes. */
static void estimate_pose(double t, float out[POSELINK_POSE_VALUES]) {
  const float sway = (float)(0.01 * sin(2.0 * PI * 0.3 * t));
  const float wave = (float)(0.5 + 0.5 * sin(2.0 * PI * 1.0 * t)); /* 0..1 */
  for (int i = 0; i < POSELINK_LANDMARK_COUNT; i++) {
    float x = BASE[i][0] + sway, y = BASE[i][1], z = BASE[i][2];
    int side = i % 2; /* 1: left side (odd indices from 11 on) */
    if (i >= 13 && i <= 22) {
      /* Elbows, wrists and hands rise with the wave: the wrists most. */
      float reach = (i >= 15) ? 0.35f : 0.15f;
      y -= reach * wave;
      x += (side ? 0.06f : -0.06f) * wave;
    }
    float *lm = &out[i * POSELINK_LANDMARK_VALUES];
    lm[0] = x;
    lm[1] = y;
    lm[2] = z;
    lm[3] = (i >= 23) ? 0.80f : 0.98f; /* legs a little less visible */
    lm[4] = 0.99f;
  }
}

/* The microphone: chunk `n` of a continuous 440 Hz tone. */
static void record_audio(uint32_t n, int16_t out[CHUNK_SAMPLES]) {
  for (int k = 0; k < CHUNK_SAMPLES; k++) {
    double s = (double)n * CHUNK_SAMPLES + k;
    out[k] = (int16_t)(8000.0 * sin(2.0 * PI * 440.0 * s / SAMPLE_RATE));
  }
}

static void describe(const PoselinkEvent *ev) {
  switch (ev->kind) {
  case POSELINK_EVENT_KIND_CONNECTED:
    printf("capture: connected, member %u\n", ev->member);
    break;
  case POSELINK_EVENT_KIND_DISCONNECTED:
    printf("capture: disconnected: %s\n", ev->text);
    break;
  case POSELINK_EVENT_KIND_RECONNECTING:
    printf("capture: reconnecting in %llu ms (attempt %u)\n", (unsigned long long)ev->delay_ms,
           ev->attempt);
    break;
  case POSELINK_EVENT_KIND_ROOM_JOINED:
  case POSELINK_EVENT_KIND_ROOM_RESTORED:
    printf("capture: room %u %s, %u members\n", ev->room,
           ev->kind == POSELINK_EVENT_KIND_ROOM_JOINED ? "joined" : "restored", ev->member_count);
    break;
  case POSELINK_EVENT_KIND_MEMBER_JOINED:
    printf("capture: member %u (%s) joined room %u\n", ev->member, ev->text, ev->room);
    break;
  case POSELINK_EVENT_KIND_MEMBER_LEFT:
    printf("capture: member %u left room %u\n", ev->member, ev->room);
    break;
  case POSELINK_EVENT_KIND_ERROR:
    printf("capture: the hub reports error %u: %s\n", ev->error_code, ev->text);
    break;
  case POSELINK_EVENT_KIND_ROLE_CHANGED:
    printf("capture: member %u of room %u is now role %u\n", ev->member, ev->room,
           (unsigned)ev->role);
    break;
  case POSELINK_EVENT_KIND_ALERT:
    printf("capture: alert %s: %.1f crossed %.1f\n", ev->text, ev->value, ev->threshold);
    break;
  case POSELINK_EVENT_KIND_AUDIO_ACKED:
    break; /* confirmations: counted, not printed (several a second) */
  default:
    break; /* received media and the rest: a viewer app would render it here */
  }
}

/* The members of the room we joined, as the engine keeps the list. */
static void print_members(const PoselinkEngine *engine, uint16_t room) {
  PoselinkMember members[16];
  size_t n = 0;
  PoselinkStatus s = poselink_room_members(engine, room, members, 16, &n);
  if (s != POSELINK_STATUS_OK && s != POSELINK_STATUS_BUFFER_TOO_SMALL) {
    fail("poselink_room_members", s);
    return;
  }
  printf("capture: %zu member(s) in room %u:", n, room);
  for (size_t i = 0; i < n && i < 16; i++)
    printf(" %u=%s", members[i].member, members[i].user);
  printf("\n");
}

/* A few of the performance monitor's metrics, by name (the seed's
 * get_performance_metrics()); a metric not measured yet is absent. */
static void print_metrics(const PoselinkEngine *engine, uint32_t acked) {
  static PoselinkMetric metrics[64];
  size_t n = 0;
  PoselinkStatus s = poselink_performance_metrics(engine, metrics, 64, &n);
  if (s != POSELINK_STATUS_OK) {
    fail("poselink_performance_metrics", s);
    return;
  }
  printf("capture: metrics");
  for (size_t i = 0; i < n; i++) {
    const char *name = metrics[i].name;
    if (strcmp(name, "fps") == 0 || strcmp(name, "latency_p99_ms") == 0 ||
        strcmp(name, "bytes_out_per_s") == 0 || strcmp(name, "cpu_percent") == 0 ||
        strcmp(name, "memory_mb") == 0 || strcmp(name, "drops") == 0)
      printf(" %s=%.2f", name, metrics[i].value);
  }
  printf(" audio_acked_to=%u\n", acked);
}

/* The performance report (JSON), into a buffer sized by asking first. */
static void print_report(const PoselinkEngine *engine) {
  size_t need = 0;
  PoselinkStatus s = poselink_performance_report(engine, NULL, 0, &need);
  if (s != POSELINK_STATUS_BUFFER_TOO_SMALL) {
    fail("poselink_performance_report", s);
    return;
  }
  /* The report is built afresh on each call and may have grown a little since:
   * leave room to spare. */
  size_t capacity = need + 1024;
  char *json = malloc(capacity);
  if (json == NULL)
    return;
  s = poselink_performance_report(engine, json, capacity, &need);
  if (s == POSELINK_STATUS_OK)
    printf("capture: performance report %s\n", json);
  else
    fail("poselink_performance_report", s);
  free(json);
}

static int usage(const char *msg) {
  fprintf(stderr,
          "capture: %s\nusage: capture [--hub URL] [--room NAME] [--token JWT] [--frames N] "
          "[--fps F] [--no-audio] [--opus] [--log FILTER] [--ca-file PEM]\n",
          msg);
  return 2;
}

int main(int argc, char **argv) {
  const char *hub = "ws://127.0.0.1:7700/", *room_name = "c-demo", *token = NULL, *log = NULL,
             *ca_file = NULL;
  long frames = 90;
  double fps = 30.0;
  int audio = 1, opus = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--no-audio") == 0) {
      audio = 0;
      continue;
    }
    if (strcmp(a, "--opus") == 0) {
      opus = 1;
      continue;
    }
    if (v == NULL)
      return usage("every option but --no-audio and --opus takes a value");
    if (strcmp(a, "--hub") == 0)
      hub = v;
    else if (strcmp(a, "--room") == 0)
      room_name = v;
    else if (strcmp(a, "--token") == 0)
      token = v;
    else if (strcmp(a, "--log") == 0)
      log = v;
    else if (strcmp(a, "--ca-file") == 0)
      ca_file = v;
    else if (strcmp(a, "--frames") == 0)
      frames = strtol(v, NULL, 10);
    else if (strcmp(a, "--fps") == 0)
      fps = strtod(v, NULL);
    else
      return usage("unknown option");
    i++;
  }
  if (frames < 1 || frames > 10000000L)
    return usage("--frames must be 1 to 10000000");
  if (!(fps > 0.0 && fps <= 240.0))
    return usage("--fps must be above 0 and at most 240");

  if (poselink_abi_version() != POSELINK_ABI_VERSION) {
    fprintf(stderr, "capture: built against C API %d but linked with %u\n", POSELINK_ABI_VERSION,
            poselink_abi_version());
    return 1;
  }
  if (log != NULL) {
    PoselinkStatus ls = poselink_log_to_stderr(log);
    if (ls != POSELINK_STATUS_OK)
      return fail("poselink_log_to_stderr", ls);
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  PoselinkConfig cfg;
  PoselinkStatus s = poselink_config_init(&cfg);
  if (s != POSELINK_STATUS_OK)
    return fail("poselink_config_init", s);
  cfg.hub = hub;
  cfg.token = token;
  cfg.ca_file = ca_file;
  cfg.client = "capture-c";
  /* A sender: what waits for this loop is the engine's own news (the room,
     the connection, alerts, acknowledgements) and the room's other media, if
     any, polled every frame: 64 slots are plenty. The default, 1 024 slots
     of about 2 KiB for apps that take in a room's streams, is 2 MiB, all of
     it resident from create on (targets/README.md, "Figures"). */
  cfg.events_capacity = 64;
  /* --opus: the audio as Opus at the default 8 kbit/s, as a board on Wi-Fi or
     LTE sends it (about 40 kbit/s with the pose); PCM16, the C API's default,
     sends about 770 kbit/s of exact samples. */
  if (opus)
    cfg.audio_codec = 1;

  PoselinkEngine *engine = NULL;
  s = poselink_engine_create(&cfg, &engine);
  if (s != POSELINK_STATUS_OK)
    return fail("poselink_engine_create", s);

  uint16_t room = 0;
  s = poselink_join_room(engine, room_name, POSELINK_ROLE_MEMBER, &room);
  if (s != POSELINK_STATUS_OK) {
    int rc = fail("poselink_join_room", s);
    poselink_engine_destroy(engine, NULL);
    return rc;
  }
  print_members(engine, room);
  poselink_set_audio_ack_events(engine, 1);
  printf("capture: streaming %ld frames at %.1f fps%s to room \"%s\" on %s (poselink %s)\n", frames,
         fps, audio ? " with audio" : "", room_name, hub, poselink_version());
  fflush(stdout);

  static float landmarks[POSELINK_POSE_VALUES];
  static int16_t pcm[CHUNK_SAMPLES];
  static PoselinkEvent event; /* 2.9 KB: one, reused */
  const uint64_t period_us = (uint64_t)(1e6 / fps + 0.5);
  const uint64_t start = now_us();
  uint32_t chunks = 0, acked = 0;
  uint64_t last_metrics_us = start;
  long sent = 0;
  int rc = 0;
  for (long f = 0; f < frames && !stop_requested; f++) {
    const uint64_t due = start + (uint64_t)f * period_us;
    sleep_until_us(due);
    const uint64_t ts = now_us();

    estimate_pose((double)(ts - start) / 1e6, landmarks);
    s = poselink_send_pose(engine, room, landmarks, POSELINK_POSE_VALUES, (uint32_t)f + 1, 0, ts,
                           POSELINK_PRIORITY_NORMAL);
    if (s != POSELINK_STATUS_OK) {
      rc = fail("poselink_send_pose", s);
      break;
    }
    sent++;

    /* Audio runs on its own 20 ms clock: hand over every chunk recorded by now. */
    while (audio && (uint64_t)(chunks + 1) * CHUNK_US <= ts - start) {
      record_audio(chunks, pcm);
      s = poselink_send_audio(engine, room, pcm, CHUNK_SAMPLES, 1, SAMPLE_RATE, chunks + 1,
                              start + (uint64_t)chunks * CHUNK_US, POSELINK_PRIORITY_HIGH);
      if (s != POSELINK_STATUS_OK) {
        rc = fail("poselink_send_audio", s);
        break;
      }
      chunks++;
    }
    if (rc != 0)
      break;

    while (poselink_poll_event(engine, &event) == POSELINK_STATUS_OK) {
      if (event.kind == POSELINK_EVENT_KIND_AUDIO_ACKED)
        acked = event.seq;
      describe(&event);
    }
    /* Once a second, what the performance monitor sees. */
    if (ts - last_metrics_us >= 1000000u) {
      last_metrics_us = ts;
      print_metrics(engine, acked);
    }
  }
  if (rc == 0)
    print_report(engine);

  PoselinkMetrics m;
  memset(&m, 0, sizeof m);
  s = poselink_engine_destroy(engine, &m);
  if (s != POSELINK_STATUS_OK && rc == 0)
    rc = fail("poselink_engine_destroy", s);
  printf("capture: sent %llu pose frames and %llu audio chunks (submitted %ld and %u, %llu bytes, "
         "dropped %llu, reconnects %llu)\n",
         (unsigned long long)m.poses_sent, (unsigned long long)m.audio_sent, sent, chunks,
         (unsigned long long)m.bytes_sent,
         (unsigned long long)(m.drops_ring + m.drops_superseded + m.drops_evicted +
                              m.drops_refused + m.drops_stale + m.drops_no_room),
         (unsigned long long)m.reconnects);
  return rc;
}
