/*
 * Roam guest workload: writes sequence-numbered, checksummed records to a raw
 * block device and verifies earlier ones, with a 10 ms heartbeat on stdout
 * (the serial console when run as /init's child/exec).
 *
 * Record format (RECORD_SIZE = 4096 bytes, little-endian), stored at byte
 * offset slot * 4096 where slot = seq % nslots, nslots = region / 4096:
 *   off  0  u8[8]  magic "ROAMREC1"
 *   off  8  u64    seq
 *   off 16  u32    crc32 (IEEE/zlib) of bytes [32, 4096)  (payload)
 *   off 20  u32    slot  (== seq % nslots)
 *   off 24  u32    nslots
 *   off 28  u32    crc32 of bytes [0, 28)                  (header)
 *   off 32  u64[508] payload: splitmix64 stream seeded with seq
 *
 * Guest mode:  workload [--dev /dev/vda] [--region-mib 32] [--rate 200]
 *                       [--sync-every 16] [--hb-ms 10] [--mem-mib 64] [--mem-dirty 32]
 *                       [--mem-pass-ms 2000] [--mem-selftest-corrupt 0|1|2|3]
 *   Console lines:
 *     WORKLOAD START dev=... nslots=N next_seq=S found_valid=V found_corrupt=C
 *     WORKLOAD MEM pages=N dirty=R/s pass_ms=P locked=0|1
 *     HB <hb_seq> <monotonic_ns> <records_written> <errors> <mem_passes> <mem_errors> *<crc>
 *       <crc>: 8 lowercase hex digits, the CRC-32 (crc32_buf below) of the line's text before " *", so that a
 *       reader can tell a heartbeat garbled on the way (QEMU's console log duplicates a byte now and then) from
 *       one the guest printed.
 *     WORKLOAD ERROR <reason> ...       (a record or a memory page that did not verify, or failed I/O)
 *
 * Memory check (the idea of QEMU's migration test guest): --mem-mib of anonymous memory (mlock'ed, populated),
 * each 4 KiB page holding a pattern of (page index, generation): word k = mem_base(index, gen) + k * MEM_STEP,
 * mem_base a 64-bit mix (MEM_STEP 0: every word the page's stamp), so every word is checked and a zero page, a
 * stale one (older generation) or another page's content fails. A checker thread (nice 10) verifies every page against the generation it last wrote
 * there (a table), one pass every --mem-pass-ms, in chunks with short sleeps; it rewrites --mem-dirty random
 * pages a second with the next generation (each verified first), so a live migration over a slow link still
 * converges. Beside them a hot ring (mem_hot: 8 pages rewritten every 5 ms) checks pages that are written all
 * the time, as a kernel stack is (reported as page=2147483648+j). A failing page is a memory error (counted, "WORKLOAD ERROR mem page=...", rate-limited) and is
 * rewritten so that it is counted once. --mem-selftest-corrupt 1|2|3: after the first pass one page is spoilt
 * behind the checker's back (1: a bit flipped, 2: left at its old generation, 3: zeroed), to see the check fail.
 * Host mode:   workload --verify FILE [--region-mib N]
 *   Checks every record in the region; exit 0 iff consistent (no corrupt record
 *   except possibly a torn write just after the newest one, and every slot in the
 *   window of the newest nslots sequence numbers holds exactly its record).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_SIZE 4096u
#define HDR_SIZE 32u
static const char MAGIC[8] = {'R', 'O', 'A', 'M', 'R', 'E', 'C', '1'};

static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc32_buf(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void build_record(uint8_t *r, uint64_t seq, uint32_t nslots) {
    uint64_t st = seq;
    for (unsigned off = HDR_SIZE; off < RECORD_SIZE; off += 8) put64(r + off, splitmix64(&st));
    memcpy(r, MAGIC, 8);
    put64(r + 8, seq);
    put32(r + 16, crc32_buf(r + HDR_SIZE, RECORD_SIZE - HDR_SIZE));
    put32(r + 20, (uint32_t)(seq % nslots));
    put32(r + 24, nslots);
    put32(r + 28, crc32_buf(r, 28));
}

enum rec_state { REC_EMPTY, REC_VALID, REC_CORRUPT };

/* Classify a record read from `slot`. *why gets a reason for REC_CORRUPT. */
static enum rec_state check_record(const uint8_t *r, uint32_t slot, uint32_t nslots,
                                   uint64_t *seq_out, const char **why) {
    *why = "";
    if (memcmp(r, MAGIC, 8) != 0) {
        for (unsigned i = 0; i < RECORD_SIZE; i++)
            if (r[i]) { *why = "bad-magic"; return REC_CORRUPT; }
        return REC_EMPTY;
    }
    uint64_t seq = get64(r + 8);
    *seq_out = seq;
    if (get32(r + 28) != crc32_buf(r, 28)) { *why = "bad-header-crc"; return REC_CORRUPT; }
    if (get32(r + 24) != nslots) { *why = "nslots-mismatch"; return REC_CORRUPT; }
    if (get32(r + 20) != slot || seq % nslots != slot) { *why = "wrong-slot"; return REC_CORRUPT; }
    if (get32(r + 16) != crc32_buf(r + HDR_SIZE, RECORD_SIZE - HDR_SIZE)) { *why = "bad-payload-crc"; return REC_CORRUPT; }
    uint64_t st = seq;
    for (unsigned off = HDR_SIZE; off < RECORD_SIZE; off += 8)
        if (get64(r + off) != splitmix64(&st)) { *why = "bad-payload"; return REC_CORRUPT; }
    return REC_VALID;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Whole-line writes to stdout (the console) so threads never interleave mid-line. */
static void say(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(1, buf, (size_t)n);
    (void)w;
}

static volatile uint64_t g_written, g_errors, g_mem_passes, g_mem_errors;
static unsigned g_hb_ms = 10;

static void *heartbeat(void *arg) {
    (void)arg;
    struct sched_param sp = {.sched_priority = 10};
    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); /* best effort */
    uint64_t period = (uint64_t)g_hb_ms * 1000000ull, hb = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        uint64_t t = now_ns();
        char line[200];
        int n = snprintf(line, sizeof line, "HB %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                         hb++, t, __atomic_load_n(&g_written, __ATOMIC_RELAXED),
                         __atomic_load_n(&g_errors, __ATOMIC_RELAXED), __atomic_load_n(&g_mem_passes, __ATOMIC_RELAXED),
                         __atomic_load_n(&g_mem_errors, __ATOMIC_RELAXED));
        if (n > 0 && n < (int)sizeof line) say("%s *%08x", line, crc32_buf((const uint8_t *)line, (size_t)n));
        uint64_t nx = (uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec + period;
        if (nx + period < now_ns()) nx = now_ns() + period; /* after a stall: don't burst */
        next.tv_sec = (time_t)(nx / 1000000000ull);
        next.tv_nsec = (long)(nx % 1000000000ull);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }
    return NULL;
}

static void error_out(const char *fmt, ...) {
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    __atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
    say("WORKLOAD ERROR %s", buf);
}

/* --- memory check ------------------------------------------------------------------------------------------ */
#define PAGE 4096u
#define PAGE_WORDS (PAGE / 8u)
/* Every word of a page holds the same stamp: a zero, stale or foreign page fails all the same, and the page compresses
 * (roamd's LZ4 tunnel carries 64 MiB of them in well under 1 MiB), so the check costs a slow link next to nothing.
 * A non-zero step here (say 0x9E3779B97F4A7C15) makes every word differ, and the pages incompressible. */
#define MEM_STEP 0ull

static uint64_t mem_base(uint32_t index, uint32_t gen) {
    uint64_t z = ((uint64_t)gen << 32 | index) + 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void mem_fill(uint64_t *p, uint32_t index, uint32_t gen) {
    uint64_t w = mem_base(index, gen);
    for (unsigned k = 0; k < PAGE_WORDS; k++, w += MEM_STEP) p[k] = w;
}
/* Number of words that differ from the pattern of (index, gen); *first gets the first one's index. */
static unsigned mem_bad_words(const uint64_t *p, uint32_t index, uint32_t gen, unsigned *first) {
    uint64_t w = mem_base(index, gen), diff = 0;
    for (unsigned k = 0; k < PAGE_WORDS; k++, w += MEM_STEP) diff |= p[k] ^ w;
    if (!diff) return 0; /* the common case: one pass, no branches in the loop */
    unsigned bad = 0;
    w = mem_base(index, gen);
    for (unsigned k = 0; k < PAGE_WORDS; k++, w += MEM_STEP)
        if (p[k] != w && bad++ == 0) *first = k;
    return bad;
}

struct mem_cfg {
    uint64_t *mem;
    uint32_t pages, dirty, pass_ms, selftest_corrupt;
    uint32_t *gen;
};

static void mem_error(const uint64_t *p, uint32_t i, uint32_t gen, unsigned bad, unsigned first) {
    uint64_t n = __atomic_add_fetch(&g_mem_errors, 1, __ATOMIC_RELAXED);
    if (n > 20 && n % 1000) return; /* rate limit: the first 20, then every 1000th */
    char what[96];
    unsigned zero = 1;
    for (unsigned k = 0; k < PAGE_WORDS && zero; k++) zero = p[k] == 0;
    int found = 0;
    if (zero) snprintf(what, sizeof what, "zero page");
    for (uint32_t back = 1; !zero && !found && back <= 8 && back <= gen; back++) {
        unsigned f2;
        if (!mem_bad_words(p, i, gen - back, &f2)) snprintf(what, sizeof what, "stale gen=%u", gen - back), found = 1;
    }
    if (!zero && !found) snprintf(what, sizeof what, "bad words=%u first=%u word=0x%016" PRIx64, bad, first, p[first]);
    say("WORKLOAD ERROR mem page=%u expected gen=%u got %s (memory errors: %" PRIu64 ")", i, gen, what, n);
}

static void *mem_checker(void *arg) {
    struct mem_cfg *c = arg;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10); /* below the writer; the heartbeat is SCHED_FIFO */
    const uint32_t chunk = 64; /* pages verified between naps */
    uint64_t rng = now_ns() | 1, pass_ns = (uint64_t)c->pass_ms * 1000000ull;
    uint64_t dirty_ns = c->dirty ? 1000000000ull / c->dirty : 0, next_dirty = now_ns();
    int corrupted = 0;
    for (;;) {
        uint64_t t0 = now_ns();
        for (uint32_t base = 0; base < c->pages; base += chunk) {
            uint32_t end = base + chunk < c->pages ? base + chunk : c->pages;
            for (uint32_t i = base; i < end; i++) {
                unsigned bad, first = 0;
                uint64_t *p = c->mem + (size_t)i * PAGE_WORDS;
                if ((bad = mem_bad_words(p, i, c->gen[i], &first))) {
                    mem_error(p, i, c->gen[i], bad, first);
                    mem_fill(p, i, ++c->gen[i]); /* counted once */
                }
            }
            /* the dirtying: pages due by now, each verified before it gets its next generation */
            uint64_t t = now_ns();
            for (unsigned burst = 0; dirty_ns && next_dirty <= t && burst < 256; burst++, next_dirty += dirty_ns) {
                uint32_t i = (uint32_t)(splitmix64(&rng) % c->pages);
                unsigned bad, first = 0;
                uint64_t *p = c->mem + (size_t)i * PAGE_WORDS;
                if ((bad = mem_bad_words(p, i, c->gen[i], &first))) mem_error(p, i, c->gen[i], bad, first);
                mem_fill(p, i, ++c->gen[i]);
            }
            if (dirty_ns && next_dirty + 1000000000ull < t) next_dirty = t; /* after a stall: don't burst */
            /* pace: chunk n of the pass is due at t0 + n/chunks * pass_ns; at least a short nap between chunks */
            uint64_t due = t0 + pass_ns * end / c->pages, nap = due > t ? due - t : 0;
            if (nap < 200000) nap = 200000;
            struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
            while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
        }
        uint64_t passes = __atomic_add_fetch(&g_mem_passes, 1, __ATOMIC_RELAXED);
        if (passes == 1 || passes == 10) { /* what the check costs (a 1-vCPU TCG guest is slow) */
            struct timespec cpu;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
            say("WORKLOAD MEM pass %" PRIu64 ": %.0f ms, checker CPU so far %.0f ms", passes, (now_ns() - t0) / 1e6,
                cpu.tv_sec * 1e3 + cpu.tv_nsec / 1e6);
        }
        if (c->selftest_corrupt && !corrupted) {
            /* behind the checker's back: one word of one page, as a lost or misplaced page would look */
            uint32_t i = c->pages / 2;
            const char *how = "one bit flipped";
            if (c->selftest_corrupt == 2) c->gen[i]++, how = "not rewritten (stale)"; /* the page keeps its old generation */
            else if (c->selftest_corrupt == 3) memset(c->mem + (size_t)i * PAGE_WORDS, 0, PAGE), how = "zeroed";
            else c->mem[(size_t)i * PAGE_WORDS + 7] ^= 0x100;
            say("WORKLOAD NOTE mem selftest: corrupted page=%u: %s", i, how);
            corrupted = 1;
        }
    }
    return NULL;
}

/*
 * The hot ring: HOT_PAGES pages rewritten every HOT_PERIOD_NS, each verified first against the generation kept in a
 * local variable (a register across the loop: a vCPU's registers always cross a migration whole). The cold pages
 * above are rewritten seldom; pages written all the time (as a kernel stack is) are where a dirty page missed by
 * the last pass shows: such a page arrives one or more generations old.
 */
#define HOT_PAGES 8u
#define HOT_INDEX 0x80000000u /* hot page j is checked as index HOT_INDEX + j */
#define HOT_PERIOD_NS 5000000ull
static void *mem_hot(void *arg) {
    uint64_t *ring = arg;
    uint32_t gen = 0;
    for (;;) {
        for (uint32_t j = 0; j < HOT_PAGES; j++) {
            uint64_t *p = ring + (size_t)j * PAGE_WORDS;
            unsigned bad, first = 0;
            if ((bad = mem_bad_words(p, HOT_INDEX + j, gen, &first))) mem_error(p, HOT_INDEX + j, gen, bad, first);
            mem_fill(p, HOT_INDEX + j, gen + 1);
        }
        gen++;
        struct timespec ts = {0, (long)HOT_PERIOD_NS};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
    }
    return NULL;
}

static int mem_start(uint32_t mib, uint32_t dirty, uint32_t pass_ms, uint32_t selftest_corrupt) {
    if (!mib) { say("WORKLOAD MEM off"); return 0; }
    static struct mem_cfg c;
    c.pages = (uint32_t)(((uint64_t)mib << 20) / PAGE);
    c.dirty = dirty, c.pass_ms = pass_ms ? pass_ms : 2000, c.selftest_corrupt = selftest_corrupt;
    size_t bytes = (size_t)c.pages * PAGE;
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    c.gen = calloc(c.pages, sizeof *c.gen);
    if (m == MAP_FAILED || !c.gen) { say("WORKLOAD ERROR mem: cannot map %u MiB: %s", mib, strerror(errno)); return -1; }
    c.mem = m;
    int locked = mlock(m, bytes) == 0;
    for (uint32_t i = 0; i < c.pages; i++) mem_fill(c.mem + (size_t)i * PAGE_WORDS, i, 0);
    say("WORKLOAD MEM pages=%u dirty=%u/s pass_ms=%u locked=%d%s", c.pages, c.dirty, c.pass_ms, locked,
        selftest_corrupt ? " selftest_corrupt=1" : "");
    pthread_t th;
    if (pthread_create(&th, NULL, mem_checker, &c)) { say("WORKLOAD ERROR mem: pthread_create"); return -1; }
    void *hot = mmap(NULL, HOT_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (hot == MAP_FAILED) { say("WORKLOAD ERROR mem: cannot map the hot ring: %s", strerror(errno)); return -1; }
    mlock(hot, HOT_PAGES * PAGE);
    for (uint32_t j = 0; j < HOT_PAGES; j++) mem_fill((uint64_t *)hot + (size_t)j * PAGE_WORDS, HOT_INDEX + j, 0);
    if (pthread_create(&th, NULL, mem_hot, hot)) { say("WORKLOAD ERROR mem: pthread_create"); return -1; }
    return 0;
}

static int full_pread(int fd, void *buf, size_t n, off_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}
static int full_pwrite(int fd, const void *buf, size_t n, off_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

static uint64_t dev_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return (uint64_t)st.st_size;
    uint64_t sz = 0;
    if (ioctl(fd, BLKGETSIZE64, &sz) == 0) return sz;
    off_t e = lseek(fd, 0, SEEK_END);
    return e > 0 ? (uint64_t)e : 0;
}

struct scan {
    uint64_t valid, corrupt, empty, max_seq;
    int have_max;
};

/* Scan all slots; record state per slot into seqs/states (may be NULL). */
static int scan_region(int fd, uint32_t nslots, struct scan *sc, uint64_t *seqs, uint8_t *states,
                       const char **whys, int report) {
    const size_t chunk = 256 * RECORD_SIZE;
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 4096, chunk)) return -1;
    memset(sc, 0, sizeof *sc);
    for (uint32_t base = 0; base < nslots; base += 256) {
        uint32_t n = nslots - base < 256 ? nslots - base : 256;
        if (full_pread(fd, buf, (size_t)n * RECORD_SIZE, (off_t)base * RECORD_SIZE)) { free(buf); return -1; }
        for (uint32_t i = 0; i < n; i++) {
            uint64_t seq = 0;
            const char *why;
            enum rec_state s = check_record(buf + (size_t)i * RECORD_SIZE, base + i, nslots, &seq, &why);
            if (states) states[base + i] = (uint8_t)s;
            if (seqs) seqs[base + i] = seq;
            if (whys) whys[base + i] = why;
            if (s == REC_VALID) {
                sc->valid++;
                if (!sc->have_max || seq > sc->max_seq) sc->max_seq = seq, sc->have_max = 1;
            } else if (s == REC_CORRUPT) {
                sc->corrupt++;
                if (report) say("WORKLOAD NOTE corrupt record at start slot=%u reason=%s", base + i, why);
            } else sc->empty++;
        }
    }
    free(buf);
    return 0;
}

static int verify_file(const char *path, unsigned region_mib) {
    crc_init();
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return 2; }
    uint64_t size = dev_size(fd);
    uint8_t first[RECORD_SIZE];
    uint32_t nslots = 0;
    if (region_mib) nslots = (uint32_t)(((uint64_t)region_mib << 20) / RECORD_SIZE);
    else if (full_pread(fd, first, RECORD_SIZE, 0) == 0 && memcmp(first, MAGIC, 8) == 0) nslots = get32(first + 24);
    if (!nslots) { fprintf(stderr, "verify: cannot determine nslots (no record in slot 0; pass --region-mib)\n"); return 2; }
    if ((uint64_t)nslots * RECORD_SIZE > size) { fprintf(stderr, "verify: region larger than file\n"); return 2; }
    uint64_t *seqs = calloc(nslots, sizeof *seqs);
    uint8_t *states = calloc(nslots, 1);
    const char **whys = calloc(nslots, sizeof *whys);
    struct scan sc;
    if (scan_region(fd, nslots, &sc, seqs, states, whys, 0)) { perror("read"); return 2; }
    uint64_t bad = 0, torn = 0;
    if (!sc.have_max) {
        printf("verify: no valid records (empty=%" PRIu64 " corrupt=%" PRIu64 ")\n", sc.empty, sc.corrupt);
        return sc.corrupt ? 1 : 3;
    }
    uint64_t H = sc.max_seq, low = H + 1 >= nslots ? H + 1 - nslots : 0;
    uint32_t torn_slot = (uint32_t)((H + 1) % nslots);
    for (uint32_t s = 0; s < nslots; s++) {
        if (states[s] == REC_CORRUPT) {
            if (s == torn_slot) { torn++; continue; } /* write in flight when the VM was killed */
            if (bad++ < 20) printf("verify: BAD slot=%u corrupt (%s)\n", s, whys[s]);
            continue;
        }
        /* the newest seq <= H that maps to slot s must be there */
        uint64_t d = (H % nslots + nslots - s) % nslots;
        if (d > H) { /* never written (region has not wrapped yet) */
            if (states[s] == REC_VALID && bad++ < 20)
                printf("verify: BAD slot=%u holds seq=%" PRIu64 " but should be empty\n", s, seqs[s]);
            continue;
        }
        uint64_t exp = H - d;
        if (states[s] != REC_VALID || seqs[s] != exp) {
            if (bad++ < 20)
                printf("verify: BAD slot=%u expected seq=%" PRIu64 " got %s seq=%" PRIu64 " (lost or stale write)\n", s,
                       exp, states[s] == REC_VALID ? "valid" : "empty", seqs[s]);
        }
    }
    printf("verify: nslots=%u valid=%" PRIu64 " empty=%" PRIu64 " corrupt=%" PRIu64 " torn_tail=%" PRIu64
           " max_seq=%" PRIu64 " window=[%" PRIu64 ",%" PRIu64 "] bad=%" PRIu64 " => %s\n",
           nslots, sc.valid, sc.empty, sc.corrupt, torn, H, low, H, bad, bad ? "FAIL" : "OK");
    return bad ? 1 : 0;
}

static void usage(void) {
    fprintf(stderr, "usage: workload [--dev DEV] [--region-mib N] [--rate REC_PER_S] [--sync-every N] [--hb-ms MS]\n"
                    "                [--mem-mib N] [--mem-dirty PAGES_PER_S] [--mem-pass-ms MS] [--mem-selftest-corrupt 0|1|2|3]\n"
                    "       workload --verify FILE [--region-mib N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *dev = "/dev/vda", *verify = NULL;
    unsigned region_mib = 32, rate = 200, sync_every = 16, region_set = 0;
    unsigned mem_mib = 64, mem_dirty = 32, mem_pass_ms = 2000, mem_corrupt = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verify") && v) verify = v, i++;
        else if (!strcmp(a, "--dev") && v) dev = v, i++;
        else if (!strcmp(a, "--region-mib") && v) region_mib = (unsigned)atoi(v), region_set = 1, i++;
        else if (!strcmp(a, "--rate") && v) rate = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--sync-every") && v) sync_every = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--hb-ms") && v) g_hb_ms = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--mem-mib") && v) mem_mib = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--mem-dirty") && v) mem_dirty = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--mem-pass-ms") && v) mem_pass_ms = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--mem-selftest-corrupt") && v) mem_corrupt = (unsigned)atoi(v), i++;
        else usage();
    }
    if (verify) return verify_file(verify, region_set ? region_mib : 0);
    if (!g_hb_ms) g_hb_ms = 10;
    crc_init();

    int direct = 1;
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0 && errno == EINVAL) direct = 0, fd = open(dev, O_RDWR | O_DSYNC);
    if (fd < 0) { say("WORKLOAD ERROR open %s: %s", dev, strerror(errno)); sleep(1); return 1; }
    uint64_t size = dev_size(fd);
    uint64_t region = (uint64_t)region_mib << 20;
    if (region > size) region = size;
    uint32_t nslots = (uint32_t)(region / RECORD_SIZE);
    if (nslots < 2) { say("WORKLOAD ERROR device %s too small (%" PRIu64 " bytes)", dev, size); sleep(1); return 1; }

    struct scan sc;
    if (scan_region(fd, nslots, &sc, NULL, NULL, NULL, 1)) { say("WORKLOAD ERROR initial scan read failed: %s", strerror(errno)); sleep(1); return 1; }
    uint64_t seq = sc.have_max ? sc.max_seq + 1 : 0, run_start = seq;
    say("WORKLOAD START dev=%s size=%" PRIu64 " nslots=%u direct=%d rate=%u sync_every=%u next_seq=%" PRIu64
        " found_valid=%" PRIu64 " found_corrupt=%" PRIu64,
        dev, size, nslots, direct, rate, sync_every, seq, sc.valid, sc.corrupt);

    pthread_t th;
    if (pthread_create(&th, NULL, heartbeat, NULL)) { say("WORKLOAD ERROR pthread_create"); return 1; }
    if (mem_start(mem_mib, mem_dirty, mem_pass_ms, mem_corrupt)) { sleep(1); return 1; }

    uint8_t *wbuf, *rbuf, *ebuf;
    if (posix_memalign((void **)&wbuf, 4096, RECORD_SIZE) || posix_memalign((void **)&rbuf, 4096, RECORD_SIZE) ||
        posix_memalign((void **)&ebuf, 4096, RECORD_SIZE)) { say("WORKLOAD ERROR oom"); return 1; }
    uint64_t rng = now_ns() | 1;
    uint64_t period = rate ? 1000000000ull / rate : 0, next = now_ns();
    for (;; seq++) {
        uint32_t slot = (uint32_t)(seq % nslots);
        build_record(wbuf, seq, nslots);
        if (full_pwrite(fd, wbuf, RECORD_SIZE, (off_t)slot * RECORD_SIZE))
            error_out("write failed seq=%" PRIu64 " slot=%u: %s", seq, slot, strerror(errno));
        else __atomic_add_fetch(&g_written, 1, __ATOMIC_RELAXED);
        if (sync_every && (seq + 1) % sync_every == 0 && fdatasync(fd))
            error_out("fdatasync failed seq=%" PRIu64 ": %s", seq, strerror(errno));

        /* read back a random record written earlier in this run (incl. this one) */
        uint64_t lo = seq + 1 >= nslots ? seq + 1 - nslots : 0;
        if (lo < run_start) lo = run_start;
        uint64_t r = lo + splitmix64(&rng) % (seq - lo + 1);
        uint32_t rslot = (uint32_t)(r % nslots);
        if (full_pread(fd, rbuf, RECORD_SIZE, (off_t)rslot * RECORD_SIZE)) {
            error_out("read failed seq=%" PRIu64 " slot=%u: %s", r, rslot, strerror(errno));
        } else {
            uint64_t got = 0;
            const char *why;
            enum rec_state s = check_record(rbuf, rslot, nslots, &got, &why);
            if (s != REC_VALID) error_out("verify seq=%" PRIu64 " slot=%u state=%s reason=%s", r, rslot, s == REC_EMPTY ? "empty" : "corrupt", why);
            else if (got != r) error_out("verify seq=%" PRIu64 " slot=%u got_seq=%" PRIu64 " (stale/lost write)", r, rslot, got);
        }

        if (period) {
            next += period;
            uint64_t t = now_ns();
            if (next + 100000000ull < t) next = t; /* fell >100 ms behind (stall): don't burst */
            if (next > t) {
                struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
            }
        }
    }
}
