package io.sdxl4j.server;

import io.sdxl4j.CancellationToken;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StepInfo;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One pipeline per device, so one worker thread runs the generations one at a time, in arrival order, from a
 * bounded FIFO queue. A job can be cancelled at any time (its client went away, its time ran out, or
 * /sdapi/v1/interrupt): a queued job leaves the queue at once, a running one stops after its current denoising step
 * (the pipeline's {@link CancellationToken}). The running job's progress is kept for /sdapi/v1/progress.
 */
final class JobQueue implements AutoCloseable {
    /** What a job does on the worker thread. */
    interface Work<T> {
        T run(Job<T> job) throws Exception;
    }

    /** Why a job was cancelled. */
    enum Reason { CLIENT_GONE, TIMEOUT, INTERRUPTED, SHUTDOWN }

    /** Thrown by {@link #submit} when the queue is full. */
    static final class QueueFullException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        QueueFullException(int capacity) {
            super("the generation queue is full (" + capacity + " waiting); try again shortly", null, false, false);
        }
    }

    private final int capacity;
    private final ArrayDeque<Job<?>> waiting = new ArrayDeque<>();
    private final Thread worker;
    private final AtomicLong ids = new AtomicLong();
    private final Listener listener;
    private volatile Job<?> running;
    private boolean closed;

    /** Hooks for metrics: all called on the worker thread except {@link #rejected}. */
    interface Listener {
        default void started(Job<?> job, long queuedNanos) {}

        default void finished(Job<?> job, long runNanos, Throwable failure) {}

        default void step(long stepNanos) {}

        default void rejected() {}
    }

    JobQueue(int capacity, Listener listener) {
        if (capacity < 0) {
            throw new IllegalArgumentException("queue capacity must be >= 0");
        }
        this.capacity = capacity;
        this.listener = listener == null ? new Listener() {} : listener;
        this.worker = new Thread(this::work, "sdxl4j-generation");
        this.worker.setDaemon(true);
        this.worker.start();
    }

    /** Queues a job; {@link QueueFullException} when {@code capacity} jobs are already waiting. */
    <T> Job<T> submit(String api, Work<T> work) {
        Job<T> job = new Job<>(ids.incrementAndGet(), api, work);
        synchronized (this) {
            if (closed) {
                throw new SdxlException(ErrorCode.CANCELLED, "the server is shutting down");
            }
            // The worker takes a job as soon as it is idle, so a job never waits behind an empty slot.
            if (waiting.size() >= capacity && !(running == null && waiting.isEmpty())) {
                listener.rejected();
                throw new QueueFullException(capacity);
            }
            waiting.addLast(job);
            notifyAll();
        }
        return job;
    }

    /** Jobs waiting (not counting the running one). */
    synchronized int waitingCount() {
        return waiting.size();
    }

    int capacity() {
        return capacity;
    }

    /** The job running now, or null. */
    Job<?> running() {
        return running;
    }

    /** Cancels the running job (AUTOMATIC1111's interrupt); false when none runs. */
    boolean interruptRunning() {
        Job<?> j = running;
        if (j == null) {
            return false;
        }
        j.cancel(Reason.INTERRUPTED);
        return true;
    }

    private synchronized boolean remove(Job<?> job) {
        return waiting.remove(job);
    }

    private void work() {
        while (true) {
            Job<?> job;
            synchronized (this) {
                while (waiting.isEmpty() && !closed) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (closed) {
                    return;
                }
                job = waiting.pollFirst();
                running = job;
            }
            try {
                job.execute();
            } finally {
                synchronized (this) {
                    running = null;
                }
            }
        }
    }

    /** Cancels every job and returns once the running job has stopped (after its current step). */
    @Override
    public void close() {
        List<Job<?>> left;
        synchronized (this) {
            closed = true;
            left = new ArrayList<>(waiting);
            waiting.clear();
            notifyAll();
        }
        left.forEach(j -> j.cancel(Reason.SHUTDOWN));
        Job<?> r = running;
        if (r != null) {
            r.cancel(Reason.SHUTDOWN);
        }
        boolean interrupted = false;
        while (worker.isAlive()) {
            try {
                worker.join();
            } catch (InterruptedException e) {
                interrupted = true;  // the pipelines must not close under a running step
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** One generation request on its way through the queue. */
    final class Job<T> {
        final long id;
        final String api;
        final long submittedNanos = System.nanoTime();
        final CancellationToken token = new CancellationToken();
        final CompletableFuture<T> result = new CompletableFuture<>();
        private final Work<T> work;
        private volatile Reason cancelled;
        // progress, written by the worker
        volatile long startedNanos;
        volatile java.time.LocalDateTime startedAt;
        volatile int imageIndex, imageCount = 1, imageHeight, imageWidth, step, steps;
        private volatile long lastStepNanos;
        private volatile boolean previewWanted;
        private volatile float[] previewLatents;

        private Job(long id, String api, Work<T> work) {
            this.id = id;
            this.api = api;
            this.work = work;
        }

        /** Why it was cancelled, or null. */
        Reason cancelled() {
            return cancelled;
        }

        boolean isRunning() {
            return running == this;
        }

        /**
         * Cancels the job: a queued one leaves the queue and fails at once, a running one stops after its current
         * step. The first reason given is kept.
         */
        void cancel(Reason reason) {
            synchronized (this) {
                if (cancelled == null) {
                    cancelled = reason;
                }
            }
            token.cancel();
            if (remove(this)) {
                result.completeExceptionally(new SdxlException(ErrorCode.CANCELLED, "cancelled while queued ("
                        + reason.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ') + ")"));
            }
        }

        /** Called from the step callback on the worker thread. */
        void onStep(StepInfo s) {
            long now = System.nanoTime();
            long last = lastStepNanos;
            listener.step(now - (last != 0 ? last : startedNanos));
            lastStepNanos = now;
            step = s.step();
            steps = s.totalSteps();
            if (previewWanted) {  // copied only when someone asked: a preview costs a copy of the latents
                previewWanted = false;
                previewLatents = s.latents();
            }
        }

        /** The latents of a recent step, requesting fresh ones for the next call; null before the first. */
        float[] previewLatents() {
            previewWanted = true;
            return previewLatents;
        }

        /** Starts the next image of a job of several (progress and preview start over). */
        void startImage(int index, int count, int height, int width) {
            imageIndex = index;
            imageCount = count;
            imageHeight = height;
            imageWidth = width;
            step = 0;
            previewLatents = null;
        }

        private void execute() {
            if (cancelled != null) {
                result.completeExceptionally(new SdxlException(ErrorCode.CANCELLED, "cancelled before it started"));
                return;
            }
            startedNanos = System.nanoTime();
            startedAt = java.time.LocalDateTime.now();
            listener.started(this, startedNanos - submittedNanos);
            Throwable failure = null;
            try {
                result.complete(work.run(this));
            } catch (Throwable t) {
                failure = t;
                result.completeExceptionally(t);
            } finally {
                listener.finished(this, System.nanoTime() - startedNanos, failure);
            }
        }
    }

    /** For tests: the ids of the waiting jobs, in order. */
    synchronized List<Long> waitingIds() {
        List<Long> out = new ArrayList<>();
        for (Iterator<Job<?>> it = waiting.iterator(); it.hasNext(); ) {
            out.add(it.next().id);
        }
        return out;
    }
}
