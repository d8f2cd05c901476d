package io.sdxl4j.ops;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.fail;

import io.sdxl4j.Tensor;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * Calls the op under test and brings its result back as a {@link HostArray}. The call runs on a watchdog
 * thread: an op that never returns (a deadlock in the native thread pool, as once happened with nested
 * parallel loops) fails its test after {@link #LIMIT_S} seconds instead of hanging the build, and every later
 * call fails at once, since the stuck native call may hold the pool.
 */
final class Ours {
    private Ours() {}

    /** The slowest op here takes ~1 s on 2 cores; 120 s only trips on a hang. */
    static final long LIMIT_S = 120;

    private static final ExecutorService WATCHED = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "sdxl4j-op-under-test");
        t.setDaemon(true);
        return t;
    });

    private static volatile String hung;

    /** Runs an op and copies its result out, closing the result tensor. */
    static HostArray run(Supplier<Tensor> op) {
        if (hung != null) {
            fail("not run: an earlier op never returned (" + hung + ")");
        }
        Future<HostArray> result = WATCHED.submit(() -> {
            try (Tensor y = op.get()) {
                return HostArray.of(y);
            }
        });
        try {
            return result.get(LIMIT_S, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            hung = "called from " + StackWalker.getInstance().walk(s -> s.skip(1).findFirst()
                    .map(Object::toString).orElse("?"));
            return fail("the op did not return within " + LIMIT_S + " s (" + hung
                    + "): a deadlock or livelock in the native core? jstack / gdb the test JVM; " + Seeds.replay());
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Asserts a view really is non-contiguous, so a "strided input" case tests what it says. */
    static Tensor strided(Tensor view) {
        assertFalse(view.isContiguous(), "expected a non-contiguous view: " + view);
        return view;
    }
}
