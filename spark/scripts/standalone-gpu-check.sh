#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the Maven jars (no Spark download): a master, and a worker that
# offers two GPUs through a discovery script; the driver (StandaloneGpuCheck) asks for executors of one GPU each
# and generates on CUDA. Without a real GPU the executors load the CUDA emulator's build of libsdxl with two emulated
# devices (SDXL4J_EMU_DEVICES=2), whose streams belong to one device each, so a task on the wrong GPU fails.
#
#   mvn -B install -DskipTests          # once: the native build (with its emulator), sdxl4j and sdxl4j-spark
#   mvn -B -pl spark test-compile       # the check's driver class
#   spark/scripts/standalone-gpu-check.sh [EMULATOR_DIR]      # default presets/target/native-build/emu
#
# Prints one line per row (executor, GPU address, CUDA device) and "STANDALONE GPU CHECK: PASS" or FAIL; logs of the
# master, worker and executors stay in the printed work directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
EMU=${1:-$ROOT/presets/target/native-build/emu}
[ -f "$EMU/libsdxl.so" ] || { echo "no emulator build of libsdxl in $EMU" >&2; exit 2; }
WORK=$(mktemp -d /tmp/sdxl4j-standalone.XXXXXX)
echo "work directory: $WORK"

mvn -B -q -pl spark dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$WORK/cp.txt" >/dev/null
# A Spark home whose jars/ the worker puts on each executor's class path: Spark's jars and ours.
mkdir -p "$WORK/spark-home/jars" "$WORK/spark-home/conf" "$WORK/worker"
tr ':' '\n' < "$WORK/cp.txt" | grep '\.jar$' | while read -r j; do ln -sf "$j" "$WORK/spark-home/jars/"; done
CP="$WORK/spark-home/jars/*:$ROOT/spark/target/classes:$ROOT/spark/target/test-classes"

# Java 17 module openings Spark needs (as its launch scripts add).
OPENS="--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED
 --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
 --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
 --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
 --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
 --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.nio.cs=ALL-UNNAMED
 --add-opens=java.base/sun.security.action=ALL-UNNAMED --add-opens=java.base/sun.util.calendar=ALL-UNNAMED
 -Djdk.reflect.useDirectMethodHandle=false -Dio.netty.tryReflectionSetAccessible=true"
OPENS=$(echo $OPENS)

cat > "$WORK/gpus.sh" <<'SH'
#!/bin/sh
echo '{"name": "gpu", "addresses": ["0", "1"]}'
SH
chmod +x "$WORK/gpus.sh"

PORT=$((20000 + RANDOM % 20000))
export SPARK_HOME="$WORK/spark-home" SPARK_SCALA_VERSION=2.13
cleanup() { kill "${WORKER_PID:-}" "${MASTER_PID:-}" 2>/dev/null || true; }
trap cleanup EXIT
java $OPENS -Xmx512m -cp "$CP" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port $PORT --webui-port 0 \
    > "$WORK/master.log" 2>&1 &
MASTER_PID=$!
for _ in $(seq 120); do  # up to 60 s for the master's port
  (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  kill -0 $MASTER_PID 2>/dev/null || { cat "$WORK/master.log"; exit 2; }
  sleep 0.5
done
java $OPENS -Xmx512m -cp "$CP" -Dspark.worker.resource.gpu.amount=2 \
    -Dspark.worker.resource.gpu.discoveryScript="$WORK/gpus.sh" \
    org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores 2 --memory 6g --webui-port 0 \
    --work-dir "$WORK/worker" spark://127.0.0.1:$PORT > "$WORK/worker.log" 2>&1 &
WORKER_PID=$!
# No wait for the worker: the application's executors start once it has registered and offered its GPUs.

set +e
java $OPENS -Xmx1g -cp "$CP" \
    -Dspark.driver.host=127.0.0.1 -Dspark.ui.enabled=false \
    -Dspark.executor.cores=1 -Dspark.cores.max=2 -Dspark.executor.memory=2g \
    -Dspark.executor.resource.gpu.amount=1 -Dspark.task.resource.gpu.amount=1 \
    -Dspark.executor.extraClassPath="$ROOT/spark/target/classes:$ROOT/spark/target/test-classes" \
    "-Dspark.executor.extraJavaOptions=-Djava.library.path=$EMU -Dorg.bytedeco.javacpp.pathsFirst=true" \
    -Dspark.executorEnv.SDXL4J_CUDA_LIBS="$EMU/fakelibs" -Dspark.executorEnv.SDXL4J_EMU_DEVICES=2 \
    -Dspark.sql.shuffle.partitions=4 -Dspark.scheduler.minRegisteredResourcesRatio=1.0 \
    -Dspark.scheduler.maxRegisteredResourcesWaitingTime=60s \
    io.sdxl4j.spark.StandaloneGpuCheck spark://127.0.0.1:$PORT \
    "$ROOT/java/src/test/resources/reference/models/tiny-sdxl-base" 2>"$WORK/driver.log" | tee "$WORK/driver.out"
rc=${PIPESTATUS[0]}
exit $rc
