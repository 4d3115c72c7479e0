/* Spin in argv[1] threads forever. */
#include <pthread.h>
#include <stdlib.h>

static void *spin(void *arg) { volatile unsigned long n = 0; for (;;) n++; return arg; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t t;
    for (int i = 1; i < n; i++) pthread_create(&t, NULL, spin, NULL);
    spin(NULL);
}
