/* Invalid free: an uninitialised pointer. Modelled deterministically as a struct whose memory
 * holds a poison pattern (0xbe bytes) and whose pointer field was never set. */
#include "misuse.h"
struct node {
    int key;
    void *data;
};
int main(void) {
    struct node n;
    memset(&n, 0xbe, sizeof n);
    n.key = 1;
    ptr(n.data);
    free(n.data);
    return survived();
}
