/* Crashes with SIGSEGV after touching 64 MiB, for a core larger than a
 * small --max-core. */
#include <stdlib.h>
#include <string.h>

volatile int *target;

int main(void)
{
	char *p = malloc(64 << 20);
	memset(p, 1, 64 << 20);
	*target = p[12345];
	return 0;
}
