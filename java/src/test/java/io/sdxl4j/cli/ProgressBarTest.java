package io.sdxl4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Output of the progress bar against a fake clock (nanoseconds set by the test). */
class ProgressBarTest {
    private static final long SECOND = 1_000_000_000L;

    private final AtomicLong clock = new AtomicLong(0);
    private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

    private String output() {
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void terminalRedrawsOneLine() {
        ProgressBar bar = new ProgressBar("base", out, true, clock::get);
        clock.set(3_500_000_000L);
        bar.step(12, 30);
        // 12 steps in 3.5 s = 3.43 it/s; 18 left take 5.25 s; 12/30 of 20 cells = 8.
        assertEquals("\rbase [########............] 12/30 steps 3.43 it/s ETA 0:05", output());
        clock.set(9 * SECOND);
        bar.step(30, 30);
        bar.finish();
        assertEquals("\rbase [########............] 12/30 steps 3.43 it/s ETA 0:05"
                // one space of padding: "in 0:09" is a character shorter than "ETA 0:05"
                + "\rbase [####################] 30/30 steps 3.33 it/s in 0:09 " + System.lineSeparator(), output());
    }

    @Test
    void slowStepsAreSecondsPerIteration() {
        ProgressBar bar = new ProgressBar("", out, true, clock::get);
        clock.set(2_500_000_000L);
        bar.step(1, 30);
        assertEquals("\r[....................] 1/30 steps 2.50 s/it ETA 1:12", output());
    }

    @Test
    void shorterLineCoversTheLongerOne() {
        ProgressBar bar = new ProgressBar("", out, true, clock::get);
        clock.set(SECOND);
        bar.step(1, 3000); // "... 1/3000 steps 1.00 it/s ETA 49:59"
        String first = output().substring(1);
        clock.set(2 * SECOND);
        bar.step(1, 2); // a new phase: the old line is ended, then the new one drawn
        String all = output();
        assertTrue(all.startsWith("\r" + first + System.lineSeparator() + "\r"), all);
        assertEquals("[##########..........] 1/2 steps 1.00 it/s ETA 0:01",
                all.substring(all.lastIndexOf('\r') + 1));
        // Within a phase, a shorter redraw is padded to the width of the previous one.
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        ProgressBar padded = new ProgressBar("", new PrintStream(b, true, StandardCharsets.UTF_8), true, clock::get);
        clock.set(102 * SECOND);
        padded.step(1, 10); // slow: "s/it" and a long ETA
        clock.set(103 * SECOND);
        padded.step(9, 10);
        String[] redraws = b.toString(StandardCharsets.UTF_8).split("\r");
        assertEquals(redraws[1].length(), redraws[2].length(), Arrays.toString(redraws));
        assertTrue(redraws[2].endsWith(" "), "padded: '" + redraws[2] + "'");
    }

    @Test
    void plainLinesEveryTenPercentWithoutConsole() {
        ProgressBar bar = new ProgressBar("refiner", out, false, clock::get);
        for (int i = 1; i <= 30; i++) {
            clock.set(i * SECOND);
            bar.step(i, 30);
        }
        bar.finish();
        String text = output();
        assertFalse(text.contains("\r"));
        List<String> lines = text.lines().toList();
        // Steps 1, 3, 6, 9, ..., 30: the first report, then each new tenth.
        assertEquals(11, lines.size(), text);
        assertEquals("refiner [....................] 1/30 steps 1.00 it/s ETA 0:29", lines.get(0));
        assertEquals("refiner [##..................] 3/30 steps 1.00 it/s ETA 0:27", lines.get(1));
        assertEquals("refiner [####################] 30/30 steps 1.00 it/s in 0:30", lines.get(10));
    }

    @Test
    void repeatedAndOutOfRangeCallsAreHarmless() {
        ProgressBar bar = new ProgressBar("", out, false, clock::get);
        bar.step(5, 0);
        bar.step(5, -3);
        assertEquals("", output());
        clock.set(SECOND);
        bar.step(50, 10); // clamped to 10/10
        bar.step(10, 10); // same count again: no second line
        assertEquals(List.of("[####################] 10/10 steps 10.00 it/s in 0:01"), output().lines().toList());
    }

    @Test
    void countGoingBackwardsStartsANewPhase() {
        ProgressBar bar = new ProgressBar("", out, true, clock::get);
        clock.set(10 * SECOND);
        bar.step(10, 10);
        clock.set(12 * SECOND);
        bar.step(1, 10); // refiner with the same number of steps: timed from the switch
        String all = output();
        assertTrue(all.contains(System.lineSeparator()), all);
        assertTrue(all.endsWith("\r[##..................] 1/10 steps 2.00 s/it ETA 0:18"), all);
    }

    @Test
    void durations() {
        assertEquals("0:00", ProgressBar.formatDuration(0.4));
        assertEquals("0:59", ProgressBar.formatDuration(59.99));
        assertEquals("1:00", ProgressBar.formatDuration(60));
        assertEquals("1:02:05", ProgressBar.formatDuration(3725));
        assertEquals("0:00", ProgressBar.formatDuration(-3));
    }

    @Test
    void concurrentCallsKeepLinesWhole() throws InterruptedException {
        ProgressBar bar = new ProgressBar("", out, true, () -> System.nanoTime() + SECOND);
        int threads = 4;
        int perThread = 500;
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int offset = t;
            Thread w = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int i = 0; i < perThread; i++) {
                    bar.step(i * threads + offset, threads * perThread);
                }
            });
            workers.add(w);
            w.start();
        }
        start.countDown();
        for (Thread w : workers) {
            w.join();
        }
        bar.finish();
        Pattern line = Pattern.compile("\\[[#.]{20}] \\d+/2000 steps( [0-9.]+ (it/s|s/it) (ETA|in) \\d+:\\d\\d| \\? it/s)? *");
        for (String segment : output().split("\r|\\R")) {
            if (!segment.isEmpty()) {
                assertTrue(line.matcher(segment).matches(), "garbled: '" + segment + "'");
            }
        }
    }
}
