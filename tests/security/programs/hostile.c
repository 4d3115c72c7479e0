/* hostile.c: one static binary, many hostile (and a few legal) behaviours, chosen by argv[1].
 * Built on the host by tests/security/conftest.py, copied into the jail as /box/hostile.
 * Modes print one machine-readable line where the test needs to see what happened. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static void *spin(void *arg) { (void)arg; for (volatile unsigned long i = 0;; i++) {} return NULL; }
static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return NULL; }

static int recurse(int depth) {
    volatile char frame[64 * 1024];
    memset((char *)frame, depth & 0xff, sizeof frame);
    return recurse(depth + 1) + frame[depth % sizeof frame];
}

static void *work(void *arg) {
    unsigned long n = (unsigned long)(uintptr_t)arg, s = 0;
    for (unsigned long i = 0; i < 2000000; i++) s += i * n;
    return (void *)(uintptr_t)(s & 1);
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w <= 0) { if (errno == EINTR) continue; _exit(10); }
        buf += w; len -= (size_t)w;
    }
}

static long fill(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("open %s %d\n", path, errno); return -1; }
    static char buf[1 << 16];
    memset(buf, 'F', sizeof buf);
    long total = 0;
    for (;;) {
        ssize_t w = write(fd, buf, sizeof buf);
        if (w < 0) { printf("fill %s %ld %s\n", path, total, strerrorname_np(errno)); break; }
        total += w;
    }
    close(fd);
    return total;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);

    if (!strcmp(m, "exit")) return atoi(argv[2]);
    if (!strcmp(m, "forkbomb")) { for (;;) fork(); }
    if (!strcmp(m, "forkcount")) {           /* fork sleepers until the pids cap says no */
        int n = 0;
        for (;;) {
            pid_t p = fork();
            if (p == 0) { for (;;) pause(); }
            if (p < 0) { printf("forks %d %s\n", n, strerrorname_np(errno)); return 0; }
            n++;
            if (n > 10000) { printf("forks %d unbounded\n", n); return 0; }
        }
    }
    if (!strcmp(m, "threadbomb")) {
        int n = 0; pthread_t t;
        pthread_attr_t a; pthread_attr_init(&a); pthread_attr_setstacksize(&a, 64 * 1024);
        for (;;) {
            int e = pthread_create(&t, &a, sleeper, NULL);
            if (e) { printf("threads %d %s\n", n, strerrorname_np(e)); return 0; }
            if (++n > 10000) { printf("threads %d unbounded\n", n); return 0; }
        }
    }
    if (!strcmp(m, "malloc")) {               /* argv[2]: MiB to touch, or forever */
        long limit = argc > 2 ? atol(argv[2]) : -1;
        for (long i = 0; limit < 0 || i < limit; i++) {
            char *p = malloc(MIB);
            if (!p) { printf("malloc failed at %ld MiB\n", i); return 4; }
            memset(p, 1, MIB);
        }
        printf("touched %ld MiB\n", limit);
        return 0;
    }
    if (!strcmp(m, "mmap")) {
        for (;;) {
            char *p = mmap(NULL, 16 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
            if (p == MAP_FAILED) { printf("mmap failed %d\n", errno); return 4; }
            for (long i = 0; i < 16 * MIB; i += 4096) p[i] = 1;
        }
    }
    if (!strcmp(m, "stack")) return recurse(0);
    if (!strcmp(m, "fill")) {                 /* fill argv[2..] one after the other */
        for (int i = 2; i < argc; i++) fill(argv[i]);
        return 0;
    }
    if (!strcmp(m, "bigfile")) {
        long n = fill(argv[2]);
        printf("bigfile returned %ld\n", n);
        return 0;
    }
    if (!strcmp(m, "flood")) {               /* flood fd argv[2], forever */
        int fd = atoi(argv[2]);
        static char buf[1 << 16];
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = "0123456789abcdef"[i % 16];
        for (;;) write_all(fd, buf, sizeof buf);
    }
    if (!strcmp(m, "write")) {               /* write exactly argv[3] bytes to fd argv[2] */
        int fd = atoi(argv[2]); long n = atol(argv[3]);
        char *buf = malloc((size_t)n + 1);
        for (long i = 0; i < n; i++) buf[i] = "0123456789abcdef"[i % 16];
        write_all(fd, buf, (size_t)n);
        return 0;
    }
    if (!strcmp(m, "spin")) {                 /* argv[2] threads spinning */
        int n = argc > 2 ? atoi(argv[2]) : 1; pthread_t t;
        for (int i = 1; i < n; i++) pthread_create(&t, NULL, spin, NULL);
        spin(NULL);
    }
    if (!strcmp(m, "sleep")) { for (;;) pause(); }
    if (!strcmp(m, "sigterm")) {
        signal(SIGTERM, SIG_IGN); signal(SIGINT, SIG_IGN); signal(SIGHUP, SIG_IGN);
        for (;;) pause();
    }
    if (!strcmp(m, "openfiles")) {
        int n = 0;
        for (;;) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0) { printf("open %d %s\n", n, strerrorname_np(errno)); return 0; }
            n++;
        }
    }
    if (!strcmp(m, "orphan")) {               /* double fork; the grandchild outlives its parent */
        pid_t p = fork();
        if (p == 0) {
            setsid();
            if (fork() == 0) {
                signal(SIGTERM, SIG_IGN); signal(SIGHUP, SIG_IGN);
                for (;;) pause();
            }
            _exit(0);
        }
        waitpid(p, NULL, 0);
        printf("orphaned\n");
        return 0;
    }
    if (!strcmp(m, "spinorphan")) {            /* like orphan, but the grandchild burns CPU */
        pid_t p = fork();
        if (p == 0) { setsid(); if (fork() == 0) spin(NULL); _exit(0); }
        waitpid(p, NULL, 0);
        printf("orphaned\n");
        return 0;
    }
    if (!strcmp(m, "killall")) {
        int r = kill(-1, SIGKILL);
        printf("kill %d %s\n", r, r ? strerrorname_np(errno) : "0");
        for (int pid = 1; pid < 70000; pid++) if (pid != getpid()) kill(pid, SIGKILL);
        printf("done\n");
        return 0;
    }
    if (!strcmp(m, "syscall")) {              /* raw syscall(argv[2], argv[3..]) */
        long a[6] = {0};
        for (int i = 0; i < 6 && i + 3 < argc; i++) a[i] = strtol(argv[i + 3], NULL, 0);
        long nr = strtol(argv[2], NULL, 0);
        long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        printf("syscall %ld returned %ld %s\n", nr, r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "clone")) {                /* clone(2) with flags argv[2] */
        unsigned long flags = strtoul(argv[2], NULL, 0) | SIGCHLD;
        long r = syscall(SYS_clone, flags, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        printf("clone returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "clone3")) {
        unsigned long args[11] = {0};
        args[0] = strtoul(argv[2], NULL, 0);
        args[4] = SIGCHLD;
        long r = syscall(SYS_clone3, args, sizeof args);
        if (r == 0) _exit(0);
        printf("clone3 returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "personality")) {
        unsigned long p = strtoul(argv[2], NULL, 0);
        long r = syscall(SYS_personality, p);
        printf("personality returned %ld\n", r);
        return 0;
    }
    if (!strcmp(m, "mknod")) {                /* mknod(argv[2], mode argv[3], dev 1:3) */
        mode_t mode = (mode_t)strtoul(argv[3], NULL, 0);
        long r = syscall(SYS_mknod, argv[2], mode, makedev(1, 3));
        printf("mknod returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "mknodat")) {
        mode_t mode = (mode_t)strtoul(argv[3], NULL, 0);
        long r = syscall(SYS_mknodat, AT_FDCWD, argv[2], mode, makedev(1, 3));
        printf("mknodat returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "socket")) {               /* socket(argv[2], argv[3], argv[4]) */
        long r = syscall(SYS_socket, strtol(argv[2], NULL, 0), strtol(argv[3], NULL, 0), strtol(argv[4], NULL, 0));
        printf("socket returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "tcp")) {                  /* connect to 127.0.0.1:argv[2] */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) { printf("socket %s\n", strerrorname_np(errno)); return 0; }
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        int r = connect(s, (struct sockaddr *)&sa, sizeof sa);
        printf("connect %d %s\n", r, r ? strerrorname_np(errno) : "0");
        if (r == 0) write(s, "ESCAPED", 7);
        return 0;
    }
    if (!strcmp(m, "abstract")) {             /* connect to abstract unix socket "\0argv[2]" */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t n = strlen(argv[2]);
        memcpy(sa.sun_path + 1, argv[2], n);
        int r = connect(s, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n));
        printf("connect %d %s\n", r, r ? strerrorname_np(errno) : "0");
        if (r == 0) write(s, "ESCAPED", 7);
        return 0;
    }
    if (!strcmp(m, "ioctl")) {                /* ioctl(0, argv[2], &c): TIOCSTI with junk high bits */
        char c = 'x';
        long r = syscall(SYS_ioctl, 0, strtoul(argv[2], NULL, 0), &c);
        printf("ioctl returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "int80")) {                /* the i386 ABI: getpid via int 0x80 */
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        printf("int80 returned %ld\n", r);
        return 0;
    }
    if (!strcmp(m, "x32")) {                  /* the x32 ABI: getpid | __X32_SYSCALL_BIT */
        long r = syscall(39 | 0x40000000L);
        printf("x32 returned %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
        return 0;
    }
    if (!strcmp(m, "threads")) {              /* legal: 4 worker threads, joined */
        pthread_t t[4]; void *ret; long sum = 0;
        for (long i = 0; i < 4; i++) if (pthread_create(&t[i], NULL, work, (void *)(uintptr_t)(i + 1))) return 5;
        for (int i = 0; i < 4; i++) { pthread_join(t[i], &ret); sum += (long)(uintptr_t)ret + 1; }
        printf("joined %ld\n", sum);
        return 0;
    }
    if (!strcmp(m, "sigdisp")) {              /* which signals does the program start with ignored? */
        for (int s = 1; s < 32; s++) {
            struct sigaction sa;
            sigaction(s, NULL, &sa);
            if (sa.sa_handler == SIG_IGN) printf("ignored %d\n", s);
        }
        printf("end\n");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
