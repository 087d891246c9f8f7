"""A real node beside the local control plane: kubelet + containerd + CNI,
kube-scheduler, kube-proxy and CoreDNS, all inside one network namespace.

One concept per module: ``configs`` (the components' configuration files, pure
functions), ``network`` (the node's network namespace and veth),
``oci`` (tiny OCI images written without a Docker engine),
``runtime`` (containerd: start, image import, teardown) and ``cluster``
(``RealNodeCluster``, the whole thing for tests and ``make cluster-up NODE=real``).
"""
