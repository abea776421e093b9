// GCBench.java — the toy VM's gcbench (libremap/toyvm/gcbench.cpp) for a
// real JVM, so that `python -m libremap bench --workload gcbench --jvm` can
// put the JVM's collectors beside the toy VM on the same shape of work.
//
// The shape is Boehm's GCBench (after Ellis and Kovac), per mutator thread
// and round: a stretch tree of depth+2 is built and dropped; a long-lived
// tree of `depth` and a double[] of `array` elements stay live while trees of
// min_depth..depth (step 2) are built top-down (populate) and bottom-up
// (makeTree) and dropped, `iters(d) = max(1, scale * 2 * size(depth+2) /
// size(d))` of each per depth, exactly as the toy VM counts them. Every tree
// is checked node by node (depth and owner tag) and the long-lived data at
// the end, so the node count printed must equal the toy VM's checksum for
// the same parameters: the bench uses that to verify the run.
//
// Usage: java GCBench threads=2 rounds=1 depth=16 min_depth=4 scale=0.25 array=500000
// Prints one line: GCBENCH nodes=<checked> expected=<n> wall_ns=<mutators start..end> ok=<bool>
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

public final class GCBench {
    static final class Node {
        Node left, right;
        int depth;  // depth below this node
        int tag;    // the owning thread's tag
        Node(int depth, int tag) { this.depth = depth; this.tag = tag; }
    }

    static int threads = 2, rounds = 1, depth = 16, minDepth = 4, arraySize = 500_000;
    static double scale = 0.25;

    static long treeSize(int d) { return (1L << (d + 1)) - 1; }

    static long iters(int d) {
        return Math.max(1L, (long) (scale * 2.0 * (double) treeSize(depth + 2) / (double) treeSize(d)));
    }

    static long expectedNodes() {
        long perRound = treeSize(depth + 2) + treeSize(depth);
        for (int d = minDepth; d <= depth; d += 2) perRound += 2 * iters(d) * treeSize(d);
        return perRound * rounds * threads;
    }

    // Top-down: both children first, then each subtree.
    static void populate(Node n, int d, int tag) {
        if (d <= 0) return;
        n.left = new Node(d - 1, tag);
        n.right = new Node(d - 1, tag);
        populate(n.left, d - 1, tag);
        populate(n.right, d - 1, tag);
    }

    // Bottom-up: the children, then the parent.
    static Node makeTree(int d, int tag) {
        if (d <= 0) return new Node(0, tag);
        Node l = makeTree(d - 1, tag), r = makeTree(d - 1, tag);
        Node n = new Node(d, tag);
        n.left = l;
        n.right = r;
        return n;
    }

    static final AtomicReference<String> error = new AtomicReference<>();

    static long check(Node n, int d, int tag) {
        if (n.depth != d || n.tag != tag) {
            error.compareAndSet(null, "a tree node has the wrong fields (depth " + n.depth + ", want " + d + ")");
            return 0;
        }
        if (d == 0) {
            if (n.left != null || n.right != null) error.compareAndSet(null, "a leaf has children");
            return 1;
        }
        if (n.left == null || n.right == null) {
            error.compareAndSet(null, "an inner node lost a child");
            return 1;
        }
        return 1 + check(n.left, d - 1, tag) + check(n.right, d - 1, tag);
    }

    static long mutator(int tid) {
        final int tag = 0x6c00 + tid;
        final int stretch = depth + 2;
        long checked = 0;
        for (int round = 0; round < rounds; ++round) {
            checked += check(makeTree(stretch, tag), stretch, tag);
            Node longLived = new Node(depth, tag);
            populate(longLived, depth, tag);
            double[] array = new double[arraySize];
            for (int k = 1; k < arraySize / 2; ++k) array[k] = 1.0 / (double) k;
            for (int d = minDepth; d <= depth; d += 2) {
                long n = iters(d);
                for (long k = 0; k < n; ++k) {
                    Node t = new Node(d, tag);
                    populate(t, d, tag);
                    checked += check(t, d, tag);
                }
                for (long k = 0; k < n; ++k) checked += check(makeTree(d, tag), d, tag);
            }
            checked += check(longLived, depth, tag);
            for (int k = 1; k < arraySize / 2; ++k)
                if (array[k] != 1.0 / (double) k) error.compareAndSet(null, "long-lived array element " + k + " changed");
            for (int k = arraySize / 2; k < arraySize; ++k)
                if (array[k] != 0.0) error.compareAndSet(null, "long-lived array element " + k + " is not 0");
        }
        return checked;
    }

    public static void main(String[] args) throws Exception {
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("expected key=value, got " + a);
            String k = a.substring(0, eq), v = a.substring(eq + 1);
            switch (k) {
                case "threads": threads = Integer.parseInt(v); break;
                case "rounds": rounds = Integer.parseInt(v); break;
                case "depth": depth = Integer.parseInt(v); break;
                case "min_depth": minDepth = Integer.parseInt(v); break;
                case "scale": scale = Double.parseDouble(v); break;
                case "array": arraySize = Integer.parseInt(v); break;
                default: throw new IllegalArgumentException("unknown option " + k);
            }
        }
        final AtomicLong nodes = new AtomicLong();
        final CountDownLatch start = new CountDownLatch(1);
        Thread[] ts = new Thread[threads];
        for (int t = 0; t < threads; ++t) {
            final int tid = t;
            ts[t] = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                nodes.addAndGet(mutator(tid));
            }, "gcbench-" + t);
            ts[t].start();
        }
        long t0 = System.nanoTime();
        start.countDown();
        for (Thread t : ts) t.join();
        long wall = System.nanoTime() - t0;
        long expected = expectedNodes();
        boolean ok = error.get() == null && nodes.get() == expected;
        System.out.println("GCBENCH nodes=" + nodes.get() + " expected=" + expected + " wall_ns=" + wall
                + " ok=" + ok + (error.get() == null ? "" : " error=" + error.get().replace(' ', '_')));
        System.exit(ok ? 0 : 1);
    }
}
