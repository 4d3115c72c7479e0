/* Burn exactly argv[1] seconds of CPU (as the process's own clock counts it), then exit. */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    double target = argc > 1 ? atof(argv[1]) : 1.0;
    struct timespec ts;
    volatile unsigned long spin = 0;
    for (;;) {
        for (int i = 0; i < 100000; i++) spin++;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        if (ts.tv_sec + ts.tv_nsec / 1e9 >= target) return 0;
    }
}
