/* SPDX-License-Identifier: MIT */
/*
 * What the frame taps (tests/wayland/frame-tap.c, tests/x11/x11-tap.c)
 * share: preloaded into an example, each wraps some of its libvmshare
 * calls, reaching the real ones through dlsym(RTLD_NEXT), and does what
 * the words of its environment variable say.
 */
#ifndef VMSHARE_TAP_H
#define VMSHARE_TAP_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The checksum the tests compare frames by: FNV-1a 64 over the visible
 * bytes of each row (width * 4: 32-bit pixels), rows in order; refcomp
 * and tests/weston/png-checksum compute the same.
 */
static inline uint64_t frame_checksum(const uint8_t *data, uint32_t width,
				      uint32_t height, uint32_t stride)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t y = 0; y < height; y++) {
		const uint8_t *row = data + (size_t)y * stride;

		for (uint32_t i = 0; i < width * 4; i++)
			h = (h ^ row[i]) * 1099511628211ull;
	}
	return h;
}

/* The wrapped function @name of the libraries after the tap. */
static inline void *tap_real(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	if (!fn) {
		fprintf(stderr, "tap: %s not found: is the client linked with libvmshare?\n",
			name);
		exit(1);
	}
	return fn;
}

/*
 * Sets *@flags[i] for each word @words[i] (NULL-terminated) found in the
 * comma-separated list of environment variable @env; says so of others.
 */
static inline void tap_words(const char *env, const char *const words[],
			     bool *const flags[])
{
	const char *value = getenv(env);
	char *list = strdup(value ? value : ""), *save = NULL;

	for (char *w = strtok_r(list, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		size_t i = 0;

		while (words[i] && strcmp(words[i], w))
			i++;
		if (words[i])
			*flags[i] = true;
		else
			fprintf(stderr, "tap: unknown word '%s' in %s\n", w, env);
	}
	free(list);
}

#endif
