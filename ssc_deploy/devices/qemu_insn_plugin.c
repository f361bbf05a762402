/*
 * ssc-deploy's qemu TCG plugin: counts the guest instructions a qemu-user process executes, and its
 * memory accesses (loads and stores as qemu performs them: a 128-bit vector load may be two), then writes
 * them to a file at exit.
 *
 *   qemu-aarch64 -plugin libsscinsn.so,out=/path/counts.txt ...
 *
 * Built with the system C compiler by `ssc-deploy device setup arm64-emulated`. Debian installs no
 * qemu-plugin.h, so the few declarations of qemu's stable plugin API (version 1, qemu 7.2) it uses
 * are written here. Counts are kept per vCPU (in qemu-user, per guest thread) and the figures are the
 * main thread's (vCPU 0): onnxruntime starts a background thread whose work follows wall time, so
 * counting every thread made two runs of the same file differ by up to 17 %. Run the runtime with one
 * thread, so the inference runs on the main thread. Instructions are counted by a callback per
 * translation block executed (qemu 7.2 has no per-vCPU inline counters); memory accesses by a
 * callback that asks qemu whether each is a store (qemu 7.2's inline memory counters filter reads and
 * writes wrongly: one registered for reads counts the stores).
 * qemu closes the guest's stderr for plugins: the figures go to the `out` file, one "key value" a line.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
typedef uint32_t qemu_plugin_meminfo_t;

enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_RW = 3 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_VCPUS 1024
static uint64_t insns[MAX_VCPUS], loads[MAX_VCPUS], stores[MAX_VCPUS];
static unsigned int vcpus_seen;
static int count_memory = 1;
static char out_path[4096];

static void on_memory(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata)
{
    (void)vaddr;
    (void)userdata;
    if (vcpu_index >= MAX_VCPUS)
        return;
    if (qemu_plugin_mem_is_store(info))
        stores[vcpu_index]++;
    else
        loads[vcpu_index]++;
}

static void on_block(unsigned int vcpu_index, void *userdata)
{
    if (vcpu_index >= MAX_VCPUS)
        return;
    insns[vcpu_index] += (uintptr_t)userdata;
    if (vcpu_index >= vcpus_seen)
        vcpus_seen = vcpu_index + 1;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
    if (!count_memory)
        return;
    for (size_t i = 0; i < n; i++)
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), on_memory, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_RW, NULL);
}

static void on_exit(qemu_plugin_id_t id, void *userdata)
{
    FILE *f = fopen(out_path, "w");
    (void)id;
    (void)userdata;
    if (!f)
        return;
    uint64_t others = 0;
    for (unsigned int i = 1; i < vcpus_seen; i++)
        others += insns[i];
    fprintf(f, "insns %" PRIu64 "\nthreads %u\ninsns_other_threads %" PRIu64 "\n", insns[0], vcpus_seen, others);
    if (count_memory)
        fprintf(f, "loads %" PRIu64 "\nstores %" PRIu64 "\n", loads[0], stores[0]);
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    out_path[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else if (strcmp(argv[i], "mem=off") == 0) {
            count_memory = 0;
        } else {
            fprintf(stderr, "ssc-deploy insn plugin: unknown argument '%s' (use out=FILE, mem=off)\n", argv[i]);
            return -1;
        }
    }
    if (!out_path[0]) {
        fprintf(stderr, "ssc-deploy insn plugin: needs out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
