"""``panda app``: the editor in the browser, on a fitted checkpoint."""

from __future__ import annotations

import shlex

from lightning.pytorch.utilities import rank_zero_warn

from panda_lightning import PandA
from panda_lightning.app import Editor, make_server
from panda_lightning.app.guard import is_loopback
from panda_lightning.cli.shared import documents_shared_options, fitted_run
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.refinement import NUM_NEIGHBOURS
from panda_lightning.functional.validation import check_int


class AppCommand:
    """The Trainer's ``app`` subcommand."""

    @documents_shared_options
    def app(
        self,
        model: PandA,
        datamodule: GeneratorActivations,
        ckpt_path: str,
        host: str = "127.0.0.1",
        port: int = 7860,
        gallery_size: int = 8,
        gallery_alpha: float = 1.0,
        ranking_samples: int = 128,
        num_neighbours: int = NUM_NEIGHBOURS,
        weights_only: bool | None = None,
        config_files: list[str] | None = None,
    ) -> None:
        """Edit samples in the browser: a local page where you pick a part by clicking on the image
        (or paint a mask), pick an appearance from a gallery, and see the edit as the strength
        slider moves; it exports the ``panda edit`` command that makes the same image. Open the
        address it prints: its token lets this page, and no other, use the server.

        Args:
            host: the address to serve at; the default is this machine only.
            port: the port; 0 takes a free one.
            gallery_size: the appearances shown for a part: those along which the samples differ most there.
            gallery_alpha: the strength of the gallery's edits (as ``edit``'s alpha).
            ranking_samples: held-out samples over which a part's appearances are ranked.
            num_neighbours: ``k`` of the mutual kNN graph of refined parts.
        """
        check_int("port", port, low=0, high=65535)
        run = fitted_run(model, datamodule, ckpt_path, weights_only)
        prefix = " ".join([*(f"--config {shlex.quote(path)}" for path in config_files or []), f"--ckpt_path {shlex.quote(ckpt_path)}"])
        editor = Editor(run.model, run.generator, prefix, gallery_size, gallery_alpha, ranking_samples, num_neighbours,
                        batch_size=datamodule.batch_size)
        if not is_loopback(host):
            rank_zero_warn(f"host={host!r}: anyone who can reach this machine at that address and has the token can use the app.")
        server = make_server(editor, host, port)
        print(f"panda app: serving at {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

