package io.sdxl4j.server;

/** One finished image: its PNG (with the infotext in its "parameters" chunk), the infotext and its seed. */
record GeneratedImage(byte[] png, String infotext, long seed, int width, int height) {}
