/* Cold-start floor: the smallest possible PID 1. It reboots the VM the moment the kernel
 * hands over control; with `-no-reboot` QEMU then exits, so the wall time of one QEMU run is
 * "firmware + kernel boot + exec of /init + reboot path". */
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
    reboot(RB_AUTOBOOT);
    /* Not reached; if reboot() failed, panic=-1 turns PID 1's exit into a reboot too. */
    return 1;
}
