/* Allocate argv[1] MiB and write every page, then exit 0 (or 1 if malloc fails). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    size_t size = mib << 20;
    volatile char *p = malloc(size);
    if (!p) return 1;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < size; off += page) p[off] = 1;
    return 0;
}
