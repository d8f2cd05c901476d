package io.sdxl4j.server;

import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import org.eclipse.jetty.ee10.servlet.ServletContextRequest;
import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;

/**
 * Notices a client that closes its connection while its request waits or runs, so that its job can be cancelled.
 * Jetty reads nothing from an HTTP/1.1 connection while a request is being handled (its body already read), so a
 * client's close would only be seen when the response is written: this watcher asks the connection's end point to
 * report when it becomes readable, and reads it: end of stream means the client is gone. Stop it before writing the
 * response, so that Jetty reads the next request on a kept-alive connection as usual.
 *
 * <p>Should a client pipeline its next request instead (bytes, not end of stream), that byte is consumed here: the
 * response then carries {@code Connection: close}, and the client sends its next request again on a new connection,
 * as HTTP/1.1 clients that pipeline must be ready to do.
 */
final class DisconnectWatcher implements Callback {
    private final EndPoint endPoint;
    private final Runnable onGone;
    private boolean stopped;
    private boolean pending;
    private boolean consumedData;

    private DisconnectWatcher(EndPoint endPoint, Runnable onGone) {
        this.endPoint = endPoint;
        this.onGone = onGone;
    }

    /** Starts watching the connection of {@code request}; null where it cannot (not Jetty's HTTP/1.1 end point). */
    static DisconnectWatcher watch(HttpServletRequest request, Runnable onGone) {
        EndPoint ep;
        try {
            ep = ServletContextRequest.getServletContextRequest(request).getConnectionMetaData().getConnection().getEndPoint();
        } catch (RuntimeException e) {
            return null;
        }
        if (!(ep instanceof AbstractEndPoint)) {
            return null;
        }
        DisconnectWatcher w = new DisconnectWatcher(ep, onGone);
        synchronized (w) {
            w.pending = ep.tryFillInterested(w);
        }
        return w.pending ? w : null;
    }

    @Override
    public void succeeded() {
        boolean gone = false;
        synchronized (this) {
            pending = false;
            if (stopped) {
                return;
            }
            try {
                int n = endPoint.fill(BufferUtil.allocate(1));
                if (n < 0) {
                    gone = true;
                } else if (n > 0) {
                    consumedData = true;  // a pipelined request: stop watching, close after the response
                } else {
                    pending = endPoint.tryFillInterested(this);
                }
            } catch (IOException e) {
                gone = true;
            }
        }
        if (gone) {
            onGone.run();
        }
    }

    @Override
    public void failed(Throwable x) {
        synchronized (this) {
            pending = false;
        }
    }

    /**
     * Stops watching (before the response is written). Returns the end point to Jetty as it found it; adds
     * {@code Connection: close} to the response if a pipelined byte was read.
     */
    void stop(HttpServletResponse response) {
        synchronized (this) {
            stopped = true;
            if (pending) {
                pending = false;
                ((AbstractEndPoint) endPoint).getFillInterest().onFail(new java.util.concurrent.CancellationException(
                        "request done"));
            }
            if (consumedData) {
                response.setHeader("Connection", "close");
            }
        }
    }
}
