/* fashion_mnist.h -- helpers shared by the Fashion-MNIST examples: a wall clock and the IDX
 * loader that tries the .gz file names first. */
#ifndef BP_EXAMPLE_FASHION_MNIST_H
#define BP_EXAMPLE_FASHION_MNIST_H

#include <stdio.h>
#include <time.h>

#include <backprop.h>

/* Debian's dataset-fashion-mnist package installs the four IDX files here. */
#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

static inline double example_seconds(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Load "<dir>/<stem>-images-idx3-ubyte[.gz]" and its labels as class indices. */
static inline bp_status fashion_mnist_load(bp_dataset **out, const char *dir, const char *stem)
{
    char img[1024], lab[1024];
    bp_status s = BP_ERR_IO;
    for (int gz = 1; gz >= 0 && s != BP_OK; gz--) {
        snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte%s", dir, stem, gz ? ".gz" : "");
        snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte%s", dir, stem, gz ? ".gz" : "");
        s = bp_dataset_load_idx(out, img, lab, 0);
    }
    return s;
}

#endif
