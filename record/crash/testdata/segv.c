/* Crashes with SIGSEGV in crash_here, writing through a null pointer. */
#include <stdio.h>

volatile int *target;

__attribute__((noinline)) void crash_here(void)
{
	*target = 1;
}

int main(void)
{
	crash_here();
	return 0;
}
