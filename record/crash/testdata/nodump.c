/* Makes itself not dumpable, then crashes with SIGSEGV: the kernel runs no
 * core handler for it. */
#include <sys/prctl.h>

volatile int *target;

int main(void)
{
	prctl(PR_SET_DUMPABLE, 0);
	*target = 1;
	return 0;
}
