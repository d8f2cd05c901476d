package io.sdxl4j.cli;

import java.io.PrintStream;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * A progress bar for the denoising loop on stderr:
 *
 * <pre>
 * base [########............] 12/30 steps 3.41 it/s ETA 0:05
 * </pre>
 *
 * The rate is steps per second over the whole phase, timed from construction (create the bar just before the
 * loop) or, for a later phase, from the previous phase's last report; like tqdm it turns into seconds per step
 * ("2.50 s/it") when slower than one step per second. On a terminal the line is redrawn in place with '\r'; when
 * stderr is not a terminal (a log file, a pipe) it prints a plain line each time another 10% is done, so logs
 * stay readable. A call with a different total, or a count that starts over at 0 or 1, begins a new phase (e.g.
 * the refiner after the base) on a new line. Thread-safe: reports may come from any thread, and one that arrives
 * late with a lower count than already shown is ignored.
 */
public final class ProgressBar {
    private static final int BAR_WIDTH = 20;

    private final String label;
    private final PrintStream out;
    private final boolean interactive;
    private final LongSupplier nanoClock;

    private long phaseStartNanos;
    private long lastReportNanos;
    private int total = -1;
    private int lastDone = -1;
    private int lastDecile = -1;
    private int drawnWidth;
    private boolean lineOpen;

    /** A bar on System.err, redrawn in place when there is a console, with the system clock. */
    public ProgressBar(String label) {
        this(label, System.err, System.console() != null, System::nanoTime);
    }

    /**
     * @param label       printed before the bar ("base", "refiner"); empty for none
     * @param interactive true to redraw one line with '\r', false for a plain line per 10%
     * @param nanoClock   monotonic nanoseconds, as System::nanoTime
     */
    public ProgressBar(String label, PrintStream out, boolean interactive, LongSupplier nanoClock) {
        this.label = label == null ? "" : label;
        this.out = out;
        this.interactive = interactive;
        this.nanoClock = nanoClock;
        this.phaseStartNanos = nanoClock.getAsLong();
        this.lastReportNanos = phaseStartNanos;
    }

    /**
     * Reports {@code done} of {@code total} steps. A total of 0 or less is ignored (nothing to show), and done is
     * clamped to [0, total]: a progress display must never fail the generation it reports on.
     */
    public synchronized void step(int done, int total) {
        if (total <= 0) {
            return;
        }
        long now = nanoClock.getAsLong();
        done = Math.max(0, Math.min(done, total));
        // A new total, or a count starting over, is the next phase (the refiner may have as many steps).
        boolean restarted = done < lastDone && done <= 1;
        if (total != this.total || restarted) {
            if (this.total > 0) {
                endLine();
                // The next phase began when the previous one last reported, not now: its first step is done.
                phaseStartNanos = lastReportNanos;
            }
            this.total = total;
            lastDone = -1;
            lastDecile = -1;
        }
        if (done <= lastDone) {
            return; // a repeat, or a stale report from another thread
        }
        lastDone = done;
        lastReportNanos = now;
        String line = render(done, total, now - phaseStartNanos);
        if (interactive) {
            // Pad with spaces so a shorter line fully covers the previous one.
            StringBuilder sb = new StringBuilder("\r").append(line);
            for (int i = line.length(); i < drawnWidth; i++) {
                sb.append(' ');
            }
            drawnWidth = line.length();
            out.print(sb);
            out.flush();
            lineOpen = true;
        } else {
            int decile = done * 10 / total;
            if (decile > lastDecile) {
                lastDecile = decile;
                out.println(line);
                out.flush();
            }
        }
    }

    /** Ends the bar's line (on a terminal); call once the loop is over, also after an error. */
    public synchronized void finish() {
        endLine();
    }

    private void endLine() {
        if (interactive && lineOpen) {
            out.println();
            out.flush();
        }
        lineOpen = false;
        drawnWidth = 0;
    }

    /** One progress line; package-private for the tests. */
    String render(int done, int total, long elapsedNanos) {
        StringBuilder sb = new StringBuilder();
        if (!label.isEmpty()) {
            sb.append(label).append(' ');
        }
        int filled = (int) ((long) done * BAR_WIDTH / total);
        sb.append('[');
        for (int i = 0; i < BAR_WIDTH; i++) {
            sb.append(i < filled ? '#' : '.');
        }
        sb.append("] ").append(done).append('/').append(total).append(" steps");
        double seconds = elapsedNanos / 1e9;
        if (done > 0 && seconds > 0) {
            double rate = done / seconds;
            if (rate >= 1.0) {
                sb.append(String.format(Locale.ROOT, " %.2f it/s", rate));
            } else {
                sb.append(String.format(Locale.ROOT, " %.2f s/it", 1.0 / rate));
            }
            if (done < total) {
                sb.append(" ETA ").append(formatDuration((total - done) / rate));
            } else {
                sb.append(" in ").append(formatDuration(seconds));
            }
        } else {
            sb.append(done < total ? " ? it/s" : "");
        }
        return sb.toString();
    }

    /** m:ss, or h:mm:ss from an hour on; whole seconds, rounded down as tqdm does. */
    static String formatDuration(double seconds) {
        long s = (long) Math.max(0, seconds);
        long h = s / 3600;
        long m = (s % 3600) / 60;
        long sec = s % 60;
        return h > 0 ? String.format(Locale.ROOT, "%d:%02d:%02d", h, m, sec)
                : String.format(Locale.ROOT, "%d:%02d", m, sec);
    }
}
