/* G.722 at 64 kbit/s through spandsp, the reference the Rust codec is checked
 * against: `g722 enc` reads 16 kHz s16le PCM on stdin and writes G.722 bytes;
 * `g722 dec` reads G.722 bytes and writes 16 kHz s16le PCM. Frames of 20 ms. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <spandsp/telephony.h>
#include <spandsp/g722.h>

int main(int argc, char **argv)
{
    int16_t pcm[320];
    uint8_t g722[160];
    size_t n;
    if (argc == 2 && strcmp(argv[1], "enc") == 0) {
        g722_encode_state_t *s = g722_encode_init(NULL, 64000, 0);
        while ((n = fread(pcm, sizeof(int16_t), 320, stdin)) > 0) {
            int len = g722_encode(s, g722, pcm, (int) n);
            fwrite(g722, 1, (size_t) len, stdout);
        }
        g722_encode_free(s);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "dec") == 0) {
        g722_decode_state_t *s = g722_decode_init(NULL, 64000, 0);
        while ((n = fread(g722, 1, 160, stdin)) > 0) {
            int len = g722_decode(s, pcm, g722, (int) n);
            fwrite(pcm, sizeof(int16_t), (size_t) len, stdout);
        }
        g722_decode_free(s);
        return 0;
    }
    fprintf(stderr, "usage: g722 enc|dec < in > out\n");
    return 2;
}
