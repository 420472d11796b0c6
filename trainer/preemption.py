"""Preemption: back up the training state, resume after a restart, save and stop on SIGTERM.

Spot VMs and TPUs are taken back with a SIGTERM and, some seconds later, a SIGKILL; Vertex
then restarts the replica with the same arguments. The run survives both:

- a backup (tf-keras BackupAndRestore) of weights, optimizer and position goes to the
  checkpoint dir ($AIP_CHECKPOINT_DIR) after every epoch and, with --backup-every-steps N,
  every N steps; a restarted run restores it and goes on from the next step, so it ends with
  the configured number of epochs ("resuming at epoch N" in the log);
- a SIGTERM makes the run save a backup after the step in progress and stop with status 143
  (TensorFlow's restartable exit code); on multi-worker jobs all workers agree on that step
  through the coordination service first, since a save is a collective of all of them;
- a finished run deletes its backup; on multi-worker jobs only the chief keeps one, the
  others write theirs into a local scratch folder that is removed after every save.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
import uuid
from typing import Any

from trainer.callbacks import TrainingError
from trainer.cluster import task_id, training_tasks
from trainer.config import Config
from trainer.keras_api import keras, tf

log = logging.getLogger(__name__)

RESTART_STATUS = 143  # 128 + SIGTERM; TensorFlow's restartable exit code on Google Cloud
STOP_KEY = "trainer/preemption/save_at_step"
ACK_KEY = "trainer/preemption/ack"
WATCH_POLL_MS = 500  # how often the watcher thread checks whether the run is over
ACK_TIMEOUT_MS = 60_000  # a worker that does not answer within this is gone already


class PreemptedError(RuntimeError):
    """The run saved a backup and stopped on SIGTERM; relaunching it resumes."""


# ---------------------------------------------------------------------------- stop agreement


def _coordination() -> Any:
    """TensorFlow's coordination-service client (MultiWorkerMirroredStrategy starts the service).

    Its key-value store has no public API; tf.distribute's own PreemptionCheckpointHandler
    agrees on a checkpoint step through the same calls.
    """
    tf.constant(0)  # the eager context must exist before its handle is used
    from tensorflow.python.eager import context

    return context.context()


class StopRequest:
    """A SIGTERM turned into "save a backup after step S and stop", with the same S everywhere.

    One worker alone: S is the step that ends when the signal is noticed. Several workers: the
    signalled one proposes the next step through the coordination service and waits until
    every worker (each through a watcher thread) has acknowledged it. Workers of
    MultiWorkerMirroredStrategy are never a full step apart (each step ends in an all-reduce),
    so none of them has passed S when it learns S.
    """

    def __init__(self, me: str, tasks: list[str], coordination: Any | None = None) -> None:
        self.me = me
        self.tasks = tasks
        self.multi_worker = len(tasks) > 1
        self._coordination = coordination
        self._signalled = threading.Event()
        self._closing = threading.Event()
        self._save_at: int | None = None
        self._announced = False
        self._previous_handler: Any = None
        self._watcher: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        """Catch SIGTERM (main thread only) and, on multi-worker jobs, watch for peers' stops."""
        try:
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: signals cannot be caught here
            log.warning("fit runs outside the main thread: a SIGTERM will not save a backup")
        if self.multi_worker:
            if self._coordination is None:
                self._coordination = _coordination()
            self._watcher = threading.Thread(
                target=self._watch, name="preemption-watcher", daemon=True
            )
            self._watcher.start()

    def close(self) -> None:
        """Give SIGTERM back to its previous handler and end the watcher thread."""
        self._closing.set()
        if self._previous_handler is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None
        if self._watcher is not None:
            self._watcher.join(timeout=5 * WATCH_POLL_MS / 1000)
            self._watcher = None

    # -- the decision, after every step
    def due(self, step: int) -> bool:
        """Whether to save and stop now that `step` steps are done (same answer on every worker)."""
        if self._signalled.is_set() and not self._announced:
            self._announced = True
            # Alone, stop now; with peers, after the next step, which none has finished yet.
            target = step + 1 if self.multi_worker else step
            log.info("SIGTERM received: saving a backup after step %d and stopping", target)
            if self.multi_worker:
                self._announce(target)
            else:
                self._save_at = target
        return self._save_at is not None and step >= self._save_at

    @property
    def signalled(self) -> bool:
        return self._signalled.is_set()

    # -- internals
    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # Only set a flag: the next step boundary does the work (logging here is unsafe).
        self._signalled.set()

    def _announce(self, step: int) -> None:
        # Another worker signalled at the same time may have proposed first: its step counts.
        with contextlib.suppress(tf.errors.AlreadyExistsError):
            self._coordination.set_config_key_value(STOP_KEY, str(step))
        for task in self.tasks:
            try:
                self._coordination.get_config_key_value(
                    f"{ACK_KEY}/{task}", timeout_in_ms=ACK_TIMEOUT_MS
                )
            except tf.errors.OpError as err:
                log.warning("no stop acknowledgement from %s: %s", task, err.message)

    def _watch(self) -> None:
        while not self._closing.is_set():
            try:
                value = self._coordination.get_config_key_value(
                    STOP_KEY, timeout_in_ms=WATCH_POLL_MS
                )
            except tf.errors.DeadlineExceededError:
                continue
            except tf.errors.OpError:
                return  # the cluster is shutting down
            self._save_at = int(value)
            log.info("a worker is stopping: saving a backup after step %d", self._save_at)
            self._coordination.set_config_key_value(f"{ACK_KEY}/{self.me}", "1")
            return


# ---------------------------------------------------------------------------- backup callback


@functools.cache
def _backup_class() -> type:
    """The callback class, made on first use so that importing this module imports no Keras."""

    class TrainingBackup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore with step-exact resume, SIGTERM saves and a resume log line."""

        def __init__(
            self,
            backup_dir: str,
            steps_per_epoch: int,
            every_steps: int | None,
            stop: StopRequest,
            options: Any | None,
        ) -> None:
            # An integer save_freq selects tf-keras's step-exact resume: a backup taken after
            # step s of epoch e resumes at step s+1, one taken at the end of an epoch at the
            # next epoch. This callback decides itself when to save (see on_train_batch_end).
            super().__init__(backup_dir, save_freq=every_steps or steps_per_epoch)
            self._supported_strategies = (
                *self._supported_strategies,
                tf.distribute.OneDeviceStrategy,
            )
            self.steps_per_epoch = steps_per_epoch
            self.every_steps = every_steps
            self.stop = stop
            self.options = options
            self._last_saved_step = 0
            self._scratch: str | None = None

        def _implements_train_batch_hooks(self) -> bool:
            return True  # steps are where SIGTERM is noticed

        def on_train_begin(self, logs: dict | None = None) -> None:
            if not self.model.built:
                raise TrainingError(
                    f"model {self.model.name} is not built: a backup restores into existing "
                    "variables, so build the model before fit"
                )
            super().on_train_begin(logs)
            self._write_non_chief_backups_to_scratch()
            self._log_resume_point()
            self.stop.start()

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            pass  # the step is recorded when a backup is saved, not before every step

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            step = self._current_epoch * self.steps_per_epoch + batch + 1
            if self.every_steps and step - self._last_saved_step >= self.every_steps:
                self._save(self._current_epoch, batch, step)
            # After the very last step training is over: finish and export instead.
            if self.stop.due(step) and step < self.params.get("epochs", 0) * self.steps_per_epoch:
                self._save_and_stop(self._current_epoch, batch, step)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            step = (epoch + 1) * self.steps_per_epoch
            if self._last_saved_step != step:  # not already saved by --backup-every-steps
                self._save(epoch, self.steps_per_epoch - 1, step)
            last_epoch = epoch + 1 >= self.params.get("epochs", 0)
            if self.stop.signalled and not self.stop.multi_worker and not last_epoch:
                self._stop_now(epoch, self.steps_per_epoch - 1)

        def on_train_end(self, logs: dict | None = None) -> None:
            self.stop.close()
            super().on_train_end(logs)  # the chief deletes its backup: the run is complete
            if self._scratch is None:
                log.info("training finished: backup in %s removed", self.backup_dir)
            self._remove_scratch()

        # -- helpers
        def _save(self, epoch: int, batch: int, step: int) -> None:
            state = self._training_state
            state._ckpt_saved_epoch.assign(epoch)
            state._ckpt_saved_batch.assign(batch)
            state.write_checkpoint_manager.save(options=self.options)
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self._last_saved_step = step
            where = "the end" if batch == self.steps_per_epoch - 1 else f"step {batch + 1}"
            what = "scratch copy of the backup" if self._scratch else "backup"
            log.info("%s saved after %s of epoch %d (step %d)", what, where, epoch + 1, step)

        def _save_and_stop(self, epoch: int, batch: int, step: int) -> None:
            if self._last_saved_step != step:
                self._save(epoch, batch, step)
            self._stop_now(epoch, batch)

        def _stop_now(self, epoch: int, batch: int) -> None:
            self.stop.close()
            self._remove_scratch()
            cause = "SIGTERM" if self.stop.signalled else "a peer's SIGTERM"
            raise PreemptedError(
                f"stopped by {cause} after step {batch + 1} of epoch {epoch + 1}; the backup "
                f"in {self.backup_dir} resumes the run when it is relaunched with the same flags"
            )

        def _write_non_chief_backups_to_scratch(self) -> None:
            """Non-chief workers take part in saves (a collective) but write to local scratch."""
            state = self._training_state
            if state.write_checkpoint_manager is state.read_checkpoint_manager:
                return
            shared_temp = state.write_checkpoint_manager.directory
            with contextlib.suppress(tf.errors.OpError):
                tf.io.gfile.rmtree(shared_temp)  # made by tf-keras next to the chief's backup
            # A path only: each save creates it and removes it at once, so nothing is left
            # behind however the run ends.
            self._scratch = os.path.join(
                tempfile.gettempdir(), f"trainer-backup-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            )
            state.write_checkpoint_manager = tf.train.CheckpointManager(
                state.read_checkpoint_manager.checkpoint, self._scratch, max_to_keep=1
            )

        def _remove_scratch(self) -> None:
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)

        def _log_resume_point(self) -> None:
            state = self._training_state
            if int(state._ckpt_saved_epoch.numpy()) < 0:
                log.info("no backup in %s: starting at epoch 1", self.backup_dir)
                return
            epoch, step = state.maybe_load_initial_counters_from_ckpt(
                self.steps_per_epoch, 0, "train"
            )
            self._last_saved_step = epoch * self.steps_per_epoch + step
            log.info(
                "resuming at epoch %d of %d%s from the backup in %s",
                epoch + 1,
                self.params.get("epochs", 0),
                f", after its step {step}," if step else "",
                self.backup_dir,
            )

    return TrainingBackup


def backup_callback(
    cfg: Config, steps_per_epoch: int, checkpoint_options: Any | None = None
) -> Any:
    """The fit callback that backs up, restores and turns SIGTERM into a saved stop."""
    me = task_id(cfg.cluster.task_type, cfg.cluster.task_index)
    stop = StopRequest(me, training_tasks(cfg.cluster))
    return _backup_class()(
        cfg.checkpoint_dir, steps_per_epoch, cfg.backup_every_steps, stop, checkpoint_options
    )


def checkpoint_options(io_device: str | None) -> Any:
    """Options of backup saves: on TPU, written by the host (/job:localhost)."""
    return tf.train.CheckpointOptions(experimental_io_device=io_device)
