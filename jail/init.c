/*
 * cellblock-init: a container's first process, and then its pid 1.
 *
 * A process that builds containers (jail/sandbox.py) starts this binary with posix_spawn
 * (vfork-style, so the Python process's memory is neither copied nor torn down), as
 *
 *     cellblock-init SYNC_FD REPORT_FD STATUS_FD CGROUP_FD [TASKS_FD...]   (fds 0, 1, 2: the program's stdio)
 *
 * a *launcher* for one container, in the host's namespaces: it clone3()s the container's
 * init into new user, mount, pid, net, ipc, uts and time namespaces, with CLONE_PARENT so
 * the init is the builder's child, writes the init's pid on REPORT_FD and exits. The
 * builder process starts it once instead, as `cellblock-init serve SOCKET_FD`: a fork
 * server that does the same for every container whose fds come on the socket
 * (serve_launches, jail/forkserver.py). The init
 * gets into the run's cgroup: on v2 it is born there (CLONE_INTO_CGROUP on CGROUP_FD); on
 * v1 (CGROUP_FD -1) it moves itself there once the "G" of step 1 came, writing "0" to each
 * hierarchy's `tasks` file (TASKS_FD..., opened by the root builder: the write is checked
 * against the opener's credentials). Moving one's own single thread takes no
 * host-wide lock (the kernel's shortcut for a single thread moving itself); moving a
 * process by pid (cgroup.procs) waits for an RCU grace period whenever none is under
 * way, often milliseconds. Either way the namespaces the clone
 * made are charged to the builder's memory group, not to the run's.
 *
 * The init, pid 1 of the new pid namespace, then works through flat steps (docs/jail.md,
 * "One run, step by step"):
 *   1. wait for the plan on SYNC_FD: "G" (on v1, then join the run's cgroups), then the
 *      sandbox uid and gid, loopback, last cap, root, binds, the seccomp BPF program (the
 *      parent sends it once the id maps are written); EOF means the parent gave up;
 *   2. unshare(CLONE_NEWCGROUP), bind the tmpfs root onto itself, the read-only binds,
 *      a fresh /proc, pivot_root(".", ".") and detach the old root, hostname, `lo` up
 *      if asked;
 *   3. drop to the sandbox user for good: setgroups, setresgid, setresuid, empty
 *      bounding and ambient sets, capset(0), no_new_privs, then the seccomp filter with a
 *      user-notification listener;
 *   4. wait for the Launch on SYNC_FD (argv, env, cwd, rlimits, CPU pin) and start the
 *      program as pid 2, vfork-style; its rlimits are set in the program's process only;
 *   5. as init: wait for the program to end or for a denied syscall (a notification on
 *      the listener), kill and reap everything left, write "status, syscall" (two ints)
 *      on STATUS_FD and exit.
 *
 * A failed step writes a report on REPORT_FD (struct report: the step, errno, and what the
 * call was made on) and exits 127; once the program has exec'd, the init writes the
 * program's clocks as read at its execve (struct started) and closes REPORT_FD. Exit 126:
 * the parent went away before the job came; 125: the init itself failed while waiting.
 *
 * The Python side owns what both sides must agree on, and passes it as -D defines
 * (jail/init_binary.py): DEFAULT_PATH, the search path of a program whose environment has
 * no PATH (jail.spec.DEFAULT_PATH), and STEP_<NAME>, the number of each setup step
 * (jail.errors.Step). The binary is named after a checksum of this file and those flags.
 *
 * Built statically against musl (jail/init_binary.py): glibc's start-up probes the CPU's
 * caches with dozens of cpuid instructions, each a trap to the hypervisor on a VM, about
 * half a millisecond per exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef DEFAULT_PATH
#error "DEFAULT_PATH is not defined: jail/init_binary.py builds this file with jail.spec.DEFAULT_PATH"
#endif

#define NAMESPACES (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | 0x80 /* CLONE_NEWTIME */)
#define CLONE_INTO_CGROUP_ 0x200000000ULL
#define MAX_MESSAGE (8 << 20)
#define SECCOMP_SET_MODE_FILTER_ 1
#define SECCOMP_FILTER_FLAG_NEW_LISTENER_ (1UL << 3)
#define SECCOMP_IOCTL_NOTIF_RECV_ 0xC0502100 /* _IOWR('!', 0, struct seccomp_notif) */
#define LINUX_CAPABILITY_VERSION_3_ 0x20080522
#define SYS_pidfd_open_ 434
#define SYS_clone3_ 435
#define SYS_close_range_ 436
#define CLOSE_RANGE_CLOEXEC_ (1U << 2)

struct clone_args_ { /* <linux/sched.h>, CLONE_ARGS_SIZE_VER2 */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
struct sock_filter_ { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct sock_fprog_ { unsigned short len; struct sock_filter_ *filter; };
struct seccomp_notif_ { uint64_t id; uint32_t pid, flags; int32_t nr; uint32_t arch; uint64_t ip, args[6]; };
struct cap_header_ { uint32_t version; int pid; };
struct cap_data_ { uint32_t effective, permitted, inheritable; };

static int report_fd = -1;

/* A failed step's report, in the host's byte order. Sent in one write of at most
   PIPE_BUF bytes, which a pipe keeps whole. */
struct report {
    int32_t step, err; /* a STEP_* number, an errno */
    char detail[4096 - 8]; /* what the call was made on, not NUL-terminated on the pipe */
};

/* Tell the parent on REPORT_FD which step failed, on what (printf-style) and why. */
static void send_report(int step, int err, const char *fmt, va_list args) {
    struct report r = {step, err, ""};
    int n = vsnprintf(r.detail, sizeof r.detail, fmt, args);
    size_t size = n < 0 ? 0 : (size_t)n < sizeof r.detail ? (size_t)n : sizeof r.detail - 1;
    if (write(report_fd, &r, offsetof(struct report, detail) + size) < 0) { /* nobody left to tell */ }
}

__attribute__((format(printf, 3, 4)))
static void report(int step, int err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    send_report(step, err, fmt, args);
    va_end(args);
}

/* Sent instead once the program has exec'd, just before the init closes REPORT_FD: its
   clocks as the container read them at execve (under load its parent may look long after),
   in the host's byte order. The container's time namespace took the builder's clock
   offsets, none, frozen at its birth: its CLOCK_MONOTONIC is the parent's. Not sent if a
   clock could not be read (the parent then reads its own). */
struct started {
    int32_t step, err; /* 0, 0: no setup step failed */
    uint64_t monotonic_ns; /* CLOCK_MONOTONIC at the program's execve */
    uint64_t setup_cpu_ns; /* CPU the run's cgroups counted before it: the init's, the program's process's */
};

/* 0 when it cannot be read (a seccomp profile may answer clock_gettime with an errno). */
static uint64_t clock_ns(clockid_t clock) {
    struct timespec t = {0, 0};
    /* raw: also called on the parent's memory (CLONE_VM) */
    if (syscall(SYS_clock_gettime, clock, &t) < 0) return 0;
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Report a failed step, then die. */
__attribute__((noreturn, format(printf, 3, 4)))
static void fail(int step, int err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    send_report(step, err, fmt, args);
    va_end(args);
    _exit(127);
}

/* Fail at `step` if the call returned < 0. A macro: on success it costs one comparison,
   and errno reaches fail() straight from the call. */
#define CHECK(r, step, ...) do { if ((r) < 0) fail(step, errno, __VA_ARGS__); } while (0)

/* n bytes from fd, or 0 at EOF (the parent gave up on us). */
static int read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        p += r; n -= (size_t)r;
    }
    return 1;
}

/* One length-prefixed message: u32 size, then the body; 0 at EOF. */
struct reader { char *p, *end; };

static int read_message(int fd, struct reader *m) {
    uint32_t size;
    if (!read_full(fd, &size, 4)) return 0;
    if (size > MAX_MESSAGE) fail(STEP_READ_MESSAGE, EMSGSIZE, "%u bytes", size);
    char *body = malloc(size + 1);
    if (!body) fail(STEP_READ_MESSAGE, ENOMEM, "%u bytes", size);
    if (!read_full(fd, body, size)) return 0;
    m->p = body; m->end = body + size;
    return 1;
}

static void take(struct reader *m, void *out, size_t n) {
    if ((size_t)(m->end - m->p) < n) fail(STEP_PARSE_MESSAGE, EBADMSG, "%zu bytes wanted, %td left", n, m->end - m->p);
    memcpy(out, m->p, n);
    m->p += n;
}

static uint32_t take_u32(struct reader *m) { uint32_t v; take(m, &v, 4); return v; }
static uint64_t take_u64(struct reader *m) { uint64_t v; take(m, &v, 8); return v; }

/* A u32-prefixed string, NUL-terminated in a fresh buffer. */
static char *take_str(struct reader *m) {
    uint32_t n = take_u32(m);
    char *s = malloc((size_t)n + 1);
    if (!s) fail(STEP_PARSE_MESSAGE, ENOMEM, "a string of %u bytes", n);
    take(m, s, n);
    s[n] = 0;
    return s;
}

static char **take_strs(struct reader *m) {
    uint32_t n = take_u32(m);
    if (n > (uint32_t)(m->end - m->p) / 4) fail(STEP_PARSE_MESSAGE, EBADMSG, "%u strings", n);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) fail(STEP_PARSE_MESSAGE, ENOMEM, "%u strings", n);
    for (uint32_t i = 0; i < n; i++) v[i] = take_str(m);
    return v;
}

/* mount(2), or fail naming the mount: "source -> target, MS_FLAGS" (a remount has no source). */
static void mount_or_fail(const char *source, const char *target, const char *fstype, unsigned long flags) {
    if (mount(source, target, fstype, flags, NULL) == 0) return;
    int err = errno;
    static const struct { unsigned long flag; const char *name; } known[] = {
        {MS_RDONLY, "MS_RDONLY"}, {MS_NOSUID, "MS_NOSUID"}, {MS_NODEV, "MS_NODEV"}, {MS_NOEXEC, "MS_NOEXEC"},
        {MS_REMOUNT, "MS_REMOUNT"}, {MS_NOATIME, "MS_NOATIME"}, {MS_NODIRATIME, "MS_NODIRATIME"},
        {MS_BIND, "MS_BIND"}, {MS_REC, "MS_REC"}, {MS_RELATIME, "MS_RELATIME"},
    };
    char names[256] = ""; /* room for every name above at once */
    size_t n = 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (flags & known[i].flag) {
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? "|" : "", known[i].name);
            flags &= ~known[i].flag;
        }
    if (flags || !n) snprintf(names + n, sizeof names - n, "%s%#lx", n ? "|" : "", flags);
    if (source) fail(STEP_MOUNT, err, "%s -> %s, %s", source, target, names);
    fail(STEP_MOUNT, err, "%s, %s", target, names);
}

/* Step 2: the container's own mounts, then pivot into the root. */
static void mount_root(struct reader *plan, const char *root) {
    /* The tmpfs came from the host's mount namespace, so here it is a locked mount and
       pivot_root refuses it (EINVAL); a bind of it made here is ours to pivot into. */
    mount_or_fail(root, root, NULL, MS_BIND);
    uint32_t binds = take_u32(plan);
    for (uint32_t i = 0; i < binds; i++) {
        char *source = take_str(plan), *target = take_str(plan);
        unsigned long remount = (unsigned long)take_u64(plan);
        mount_or_fail(source, target, NULL, MS_BIND | MS_REC);
        if (remount) mount_or_fail(NULL, target, NULL, remount);
    }
    char proc[4096];
    snprintf(proc, sizeof proc, "%s/proc", root);
    mount_or_fail("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    CHECK(chdir(root), STEP_CHDIR, "%s", root);
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
       only the new tree (the trick runc uses; pivot_root(2) NOTES). */
    CHECK(syscall(SYS_pivot_root, ".", "."), STEP_PIVOT_ROOT, "., . in %s", root);
    CHECK(umount2(".", MNT_DETACH), STEP_UMOUNT2, "the old root, MNT_DETACH");
    CHECK(chdir("/"), STEP_CHDIR, "/");
}

/* A fresh network namespace has only `lo`, down; some programs talk to themselves. */
static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s, STEP_SOCKET, "AF_INET, SOCK_DGRAM");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    CHECK(ioctl(s, SIOCGIFFLAGS, &ifr), STEP_IOCTL, "lo, SIOCGIFFLAGS");
    ifr.ifr_flags |= IFF_UP;
    CHECK(ioctl(s, SIOCSIFFLAGS, &ifr), STEP_IOCTL, "lo, SIOCSIFFLAGS, IFF_UP");
    close(s);
}

/* Step 3. setresuid does not clear our capabilities here: the setup credentials were the
   unmapped host root, not namespace root. So they go explicitly, every set. */
static void drop_privileges(uint32_t uid, uint32_t gid, int last_cap) {
    CHECK(syscall(SYS_setgroups, 0, NULL), STEP_SETGROUPS, "none");
    CHECK(syscall(SYS_setresgid, gid, gid, gid), STEP_SETRESGID, "%u", gid);
    CHECK(syscall(SYS_setresuid, uid, uid, uid), STEP_SETRESUID, "%u", uid);
    /* A change of uid clears the parent-death signal (commit_creds): set it again. */
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), STEP_PRCTL, "PR_SET_PDEATHSIG, SIGKILL");
    for (int cap = 0; cap <= last_cap; cap++)
        CHECK(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), STEP_PRCTL, "PR_CAPBSET_DROP, %d", cap);
    CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), STEP_PRCTL, "PR_CAP_AMBIENT_CLEAR_ALL");
    struct cap_header_ header = {LINUX_CAPABILITY_VERSION_3_, 0};
    struct cap_data_ data[2];
    memset(data, 0, sizeof data);
    CHECK(syscall(SYS_capset, &header, data), STEP_CAPSET, "no capabilities");
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_PRCTL, "PR_SET_NO_NEW_PRIVS");
}

static int load_seccomp(struct reader *plan) {
    uint32_t size = take_u32(plan);
    if (size % 8 || size / 8 > 0xFFFF || size > (uint32_t)(plan->end - plan->p))
        fail(STEP_SECCOMP, EINVAL, "a BPF program of %u bytes", size);
    struct sock_fprog_ prog = {(unsigned short)(size / 8), (struct sock_filter_ *)plan->p};
    plan->p += size;
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, SECCOMP_FILTER_FLAG_NEW_LISTENER_, &prog);
    CHECK(listener, STEP_SECCOMP, "SECCOMP_SET_MODE_FILTER, NEW_LISTENER, %u instructions", size / 8);
    return (int)listener;
}

/* What the program's process does between the vfork-style clone and execve. */
struct launch {
    char **argv, **env;
    const char *path;
    uint32_t nlimits;
    uint32_t *resources;
    uint64_t *values;
    /* Set by the program's process when a step failed (the memory is shared): the step,
       its errno, and for STEP_PRLIMIT64 the index of the limit. */
    int step, err;
    uint32_t limit;
    /* Set by the program's process just before each execve: its CPU so far, and the time. */
    uint64_t cpu_ns, monotonic_ns;
};

static char program_stack[64 * 1024] __attribute__((aligned(16)));

/* Raw calls only from here to execve: this runs on the parent's memory (CLONE_VM). */
static void program_fail(struct launch *l, int step) {
    l->step = step;
    l->err = errno;
    _exit(127);
}

static void exec_now(struct launch *l, const char *file) {
    l->cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    l->monotonic_ns = clock_ns(CLOCK_MONOTONIC);
    execve(file, l->argv, l->env);
}

static int program_main(void *arg) {
    struct launch *l = arg;
    for (uint32_t i = 0; i < l->nlimits; i++) {
        struct rlimit r = {l->values[i], l->values[i]};
        if (syscall(SYS_prlimit64, 0, l->resources[i], &r, NULL) < 0) {
            l->limit = i;
            program_fail(l, STEP_PRLIMIT64);
        }
    }
    const char *file = l->argv[0];
    if (strchr(file, '/')) {
        exec_now(l, file);
        program_fail(l, STEP_EXECVE);
    }
    /* execvpe's search, over the program's own PATH. */
    int seen_eacces = 0;
    char full[4096];
    for (const char *dir = l->path; ; ) {
        const char *end = strchrnul(dir, ':');
        int n = snprintf(full, sizeof full, "%.*s%s%s", (int)(end - dir), dir, end == dir ? "" : "/", file);
        if (n < (int)sizeof full) {
            exec_now(l, full);
            if (errno == EACCES) seen_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) break;
        }
        if (!*end) { errno = seen_eacces ? EACCES : ENOENT; break; }
        dir = end + 1;
    }
    program_fail(l, STEP_EXECVE);
    return 127;
}

/* Step 5: wait for the program or a denied syscall, clean up, report. Never returns. */
static void serve_as_init(int program, int listener, int status_fd) {
    int pidfd = (int)syscall(SYS_pidfd_open_, program, 0);
    if (pidfd < 0) _exit(125);
    struct pollfd fds[2] = {{pidfd, POLLIN, 0}, {listener, POLLIN, 0}};
    int32_t report[2] = {0, -1};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(125);
        }
        if (fds[1].revents) {
            struct seccomp_notif_ notif;
            memset(&notif, 0, sizeof notif); /* the kernel wants it zeroed */
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV_, &notif) < 0) _exit(125);
            report[0] = SIGSYS; /* the wait status of a process killed by SIGSYS */
            report[1] = notif.nr;
            break;
        }
        if (fds[0].revents) {
            int status;
            if (waitpid(program, &status, 0) < 0) _exit(125);
            report[0] = status;
            break;
        }
    }
    /* Whatever is left running dies now, and is reaped, so that every output pipe is at
       EOF when the parent reads the report. */
    for (;;) {
        if (kill(-1, SIGKILL) < 0 && errno == ESRCH) break;
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) break;
    }
    if (write(status_fd, report, sizeof report) != sizeof report) _exit(125);
    _exit(0);
}

/* cgroup v1: move ourselves (one thread, so the kernel takes no host-wide lock) into the
   run's group of each hierarchy, writing "0" to the `tasks` fds the builder opened. */
static void join_cgroups(const int *tasks_fds, int n) {
    for (int i = 0; i < n; i++) {
        int fd = tasks_fds[i];
        CHECK(write(fd, "0", 1) == 1 ? 0 : -1, STEP_WRITE, "\"0\" to the run cgroup's tasks file (fd %d)", fd);
        close(fd);
    }
}

static void init_main(int sync_fd, int status_fd, const int *tasks_fds, int ntasks) {
    /* If the builder dies, so does the run. */
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), STEP_PRCTL, "PR_SET_PDEATHSIG, SIGKILL");
    /* Every signal at its default and none blocked, whatever the builder ignored (Python
       ignores SIGPIPE and SIGXFSZ, and an ignored signal survives execve): the program
       inherits these, and the init itself sets no handler. Done here, before the job
       comes, not in the program's process on the job's path. */
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {SIG_DFL, 0, NULL, 0};
    for (int sig = 1; sig <= 64; sig++) syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
    char go;
    struct reader plan;
    /* "G" comes once the builder has our pid (a report before it would be read as the
       pid) and has written our id maps; then the cgroups, then the plan's body. */
    if (!read_full(sync_fd, &go, 1) || go != 'G') _exit(126);
    join_cgroups(tasks_fds, ntasks);
    /* On v1 the CPU we used until now was counted outside the run's cgroups; on v2 we were
       born in the run's group. */
    uint64_t cpu_outside = ntasks ? clock_ns(CLOCK_PROCESS_CPUTIME_ID) : 0;
    if (!read_message(sync_fd, &plan)) _exit(126);
    uint32_t uid = take_u32(&plan), gid = take_u32(&plan);
    uint32_t loopback = take_u32(&plan);
    int last_cap = (int)take_u32(&plan);
    char *root = take_str(&plan);
    CHECK(unshare(CLONE_NEWCGROUP), STEP_UNSHARE, "CLONE_NEWCGROUP");
    mount_root(&plan, root);
    CHECK(sethostname("cellblock", 9), STEP_SETHOSTNAME, "cellblock");
    if (loopback) loopback_up();
    drop_privileges(uid, gid, last_cap);
    int listener = load_seccomp(&plan);

    struct reader job;
    if (!read_message(sync_fd, &job)) _exit(126); /* the container was thrown away unused */
    struct launch l = {0};
    l.argv = take_strs(&job);
    l.env = take_strs(&job);
    char *cwd = take_str(&job);
    l.nlimits = take_u32(&job);
    if (l.nlimits > 64) fail(STEP_PRLIMIT64, EINVAL, "%u limits", l.nlimits);
    l.resources = calloc(l.nlimits + 1, sizeof *l.resources);
    l.values = calloc(l.nlimits + 1, sizeof *l.values);
    for (uint32_t i = 0; i < l.nlimits; i++) {
        l.resources[i] = take_u32(&job);
        l.values[i] = take_u64(&job);
    }
    int32_t cpu = (int32_t)take_u32(&job);
    if (!l.argv[0]) fail(STEP_EXECVE, EINVAL, "no argv[0]");
    l.path = DEFAULT_PATH;
    for (char **e = l.env; *e; e++)
        if (!strncmp(*e, "PATH=", 5)) l.path = *e + 5;

    CHECK(chdir(cwd), STEP_CHDIR, "%s", cwd);
    if (cpu >= CPU_SETSIZE) fail(STEP_SCHED_SETAFFINITY, EINVAL, "cpu %d", cpu);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        CHECK(sched_setaffinity(0, sizeof set, &set), STEP_SCHED_SETAFFINITY, "cpu %d", cpu);
    }
    /* Only 0, 1 and 2 may reach the program: every other fd, inherited from the builder
       (the control fds it passed us) or opened here, closes at its execve. */
    CHECK(syscall(SYS_close_range_, 3, ~0U, CLOSE_RANGE_CLOEXEC_), STEP_CLOSE_RANGE, "3, ~0, CLOSE_RANGE_CLOEXEC");
    /* The program is pid 2, not pid 1: the kernel drops signals to pid 1 that have no
       handler, and abort() and kill(getpid(), ...) must work as programs expect. */
    int program = clone(program_main, program_stack + sizeof program_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &l);
    CHECK(program, STEP_CLONE, "CLONE_VM|CLONE_VFORK, for %s", l.argv[0]);
    if (l.err) {
        waitpid(program, NULL, 0);
        if (l.step == STEP_PRLIMIT64)
            fail(l.step, l.err, "resource %u, %llu", l.resources[l.limit], (unsigned long long)l.values[l.limit]);
        fail(l.step, l.err, "%s", l.argv[0]);
    }
    /* The program runs: its clocks, then EOF, on the report pipe tell the parent. Keep only
       what the init still needs; the program has its own copies of 0, 1 and 2. */
    uint64_t init_cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (l.monotonic_ns && l.cpu_ns && init_cpu > cpu_outside) {
        struct started started = {0, 0, l.monotonic_ns, init_cpu - cpu_outside + l.cpu_ns};
        if (write(report_fd, &started, sizeof started) < 0) { /* nobody left to tell */ }
    }
    close(report_fd);
    close(sync_fd);
    for (int fd = 0; fd < 3; fd++) close(fd);
    serve_as_init(program, listener, status_fd);
}

/* The init's birth: clone3 into every namespace at once (there is no window in which the
   id maps could be written to the wrong namespace), with CLONE_PARENT, so the init is
   the builder's child, which reaps it (exit_signal must then be 0: the kernel uses ours,
   SIGCHLD); on v2 into the run's cgroup (CLONE_INTO_CGROUP on cgroup_fd, else -1).
   Returns as fork does. */
static long clone_init(int cgroup_fd) {
    struct clone_args_ args;
    memset(&args, 0, sizeof args);
    args.flags = NAMESPACES | CLONE_PARENT;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP_;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    long pid = syscall(SYS_clone3_, &args, sizeof args);
    if (pid < 0) {
        int err = errno;
        report(STEP_CLONE3, err, "flags=%#llx", (unsigned long long)args.flags);
        errno = err;
    }
    return pid;
}

/* Fork-server mode (`cellblock-init serve SOCKET_FD`, jail/forkserver.py): the launcher
   of every container of one builder, so that none pays for an exec of its own. Each
   message on SOCKET_FD is one launch: two int32, the number of fds and whether a cgroup
   fd is among them, and by SCM_RIGHTS the program's stdin, stdout and stderr, SYNC,
   REPORT, STATUS, the cgroup fd (v2) and the `tasks` fds (v1). The answer is the init's
   pid; -errno if clone3 failed (also reported on REPORT, as the launcher does); 0 for a
   message that is not a launch (nothing reported). EOF ends the server. The init closes the socket and the server's own 0, 1, 2 (all
   /dev/null) as it takes the program's stdio; the rest it does as a launcher's init. */
#define MAX_LAUNCH_FDS 16
__attribute__((noreturn))
static void serve_launches(int sock) {
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), STEP_PRCTL, "PR_SET_PDEATHSIG, SIGKILL");
    for (;;) {
        int32_t header[2];
        union { char buf[CMSG_SPACE(MAX_LAUNCH_FDS * sizeof(int))]; struct cmsghdr align; } control;
        struct iovec iov = {header, sizeof header};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0) _exit(0);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(125);
        }
        int fds[MAX_LAUNCH_FDS], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (k > MAX_LAUNCH_FDS - nfds) k = MAX_LAUNCH_FDS - nfds; /* MSG_CTRUNC: refused below */
            memcpy(fds + nfds, CMSG_DATA(c), (size_t)k * sizeof(int));
            nfds += k;
        }
        int32_t answer = 0;
        int has_cgroup = n == sizeof header && header[1] == 1;
        int whole = n == sizeof header && !(msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC));
        if (whole && (header[1] == 0 || header[1] == 1) && header[0] == nfds && nfds >= 6 + has_cgroup) {
            report_fd = fds[4];
            long pid = clone_init(has_cgroup ? fds[6] : -1);
            if (pid == 0) {
                close(sock);
                for (int fd = 0; fd < 3; fd++) CHECK(dup2(fds[fd], fd), STEP_DUP2, "the program's fd %d", fd);
                for (int i = 0; i < 3; i++) close(fds[i]); /* all above 2: the server's 0, 1, 2 are open */
                if (has_cgroup) close(fds[6]);
                init_main(fds[3], fds[5], fds + 6 + has_cgroup, nfds - 6 - has_cgroup);
                _exit(125);
            }
            answer = pid < 0 ? -errno : (int32_t)pid;
            report_fd = -1;
        }
        for (int i = 0; i < nfds; i++) close(fds[i]);
        if (write(sock, &answer, sizeof answer) != sizeof answer) _exit(125);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) serve_launches(atoi(argv[2]));
    if (argc < 5 || argc > 5 + MAX_LAUNCH_FDS) return 2;
    int sync_fd = atoi(argv[1]), status_fd = atoi(argv[3]), cgroup_fd = atoi(argv[4]);
    report_fd = atoi(argv[2]);
    long pid = clone_init(cgroup_fd);
    if (pid < 0) _exit(127);
    if (pid > 0) {
        int32_t init_pid = (int32_t)pid;
        CHECK(write(report_fd, &init_pid, 4) == 4 ? 0 : -1, STEP_WRITE, "the init's pid, on the report pipe");
        _exit(0);
    }
    if (cgroup_fd >= 0) close(cgroup_fd);
    int tasks[MAX_LAUNCH_FDS];
    for (int i = 5; i < argc; i++) tasks[i - 5] = atoi(argv[i]);
    init_main(sync_fd, status_fd, tasks, argc - 5);
    return 125;
}
