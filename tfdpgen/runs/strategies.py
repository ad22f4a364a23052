"""tf.distribute strategies by name, as `tfdpgen train --strategy` offers them."""
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name: str = "default", devices: int = None) -> tf.distribute.Strategy:
    """The named strategy. `devices` splits the CPU into that many logical devices when there is no GPU (tests and
    laptops); it must be set before TensorFlow starts its runtime, so call this first."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
    if devices is not None:
        if devices < 1:
            raise ValueError(f"--devices must be at least 1, got {devices}.")
        if not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in found[:devices or len(found)]])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # the cluster comes from TF_CONFIG
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f"no TPU could be reached ({error}); use --strategy default or mirrored here.") from error
    return tf.distribute.TPUStrategy(resolver)
