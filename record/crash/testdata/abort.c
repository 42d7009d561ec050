/* Crashes with SIGABRT in abort_here. */
#include <stdlib.h>

__attribute__((noinline)) void abort_here(void)
{
	abort();
}

int main(void)
{
	abort_here();
	return 0;
}
