"""The model store's publish step: a fine-tune never replaces a version published after its parent."""

import tempfile
import unittest
from pathlib import Path

from recsys_trainer import store


def stage(root: Path, model: str, version: str) -> Path:
    staged = store.staging_dir(root, model, version)
    (staged / "model.onnx").write_bytes(version.encode())
    return staged


class PublishTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_publish_moves_current_and_checksums(self):
        store.publish(self.root, "em3", "v1", stage(self.root, "em3", "v1"), {})
        self.assertEqual(store.read_current(self.root, "em3"), "v1")
        manifest = store.verify_version(self.root / "em3" / "v1")
        self.assertEqual(set(manifest["files"]), {"model.onnx"})

    def test_expect_current_refuses_a_stale_parent(self):
        store.publish(self.root, "em3", "v1", stage(self.root, "em3", "v1"), {})
        # the online update derived v2 from v1, but the nightly job published v3 meanwhile
        store.publish(self.root, "em3", "v3", stage(self.root, "em3", "v3"), {})
        staged = stage(self.root, "em3", "v2")
        with self.assertRaises(store.StaleParent):
            store.publish(self.root, "em3", "v2", staged, {}, expect_current="v1")
        self.assertEqual(store.read_current(self.root, "em3"), "v3")
        self.assertFalse((self.root / "em3" / "v2").exists())
        # with the parent still current it publishes
        store.publish(self.root, "em3", "v4", stage(self.root, "em3", "v4"), {}, expect_current="v3")
        self.assertEqual(store.read_current(self.root, "em3"), "v4")

    def test_manifest_is_strict_json(self):
        """The services parse manifests with JSON.parse: an undefined metric is written as null."""
        import json
        import math

        store.publish(self.root, "em3", "v1", stage(self.root, "em3", "v1"),
                      {"metrics": {"click_cold_auc": math.nan, "curve": [1.0, math.inf]}})
        text = (self.root / "em3" / "v1" / store.MANIFEST).read_text()
        self.assertNotIn("NaN", text)
        self.assertEqual(json.loads(text)["metrics"], {"click_cold_auc": None, "curve": [1.0, None]})


class StrictJsonTest(unittest.TestCase):
    def test_online_result_has_no_nan(self):
        """The online trainer parses the result with JSON.parse, which refuses NaN."""
        import json
        import math

        from recsys_trainer.store import strict_json
        text = strict_json({"decision": "rejected", "holdout": {"click_auc": 0.6, "click_cold_auc": math.nan},
                            "curve": [1.0, math.inf]})
        self.assertNotIn("NaN", text)
        self.assertEqual(json.loads(text)["holdout"]["click_cold_auc"], None)
        self.assertEqual(json.loads(text)["curve"], [1.0, None])


if __name__ == "__main__":
    unittest.main()
