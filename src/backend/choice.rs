//! Choosing the device at run time: the model and the trainer are generic over a
//! [`Backend`]; a caller that learns the device from its user (`--device`, `RMX_DEVICE`, the
//! C ABI) writes its work once as an [`OnDevice`] and [`on_device`] runs it on the backend
//! the [`DeviceKind`] names.
use super::{cpu::Cpu, Backend};
use crate::error::Result;

/// A device a user can name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU backend (the default).
    #[default]
    Cpu,
    /// GPU 0 through the CUDA backend (this build needs feature `cuda`; with `cuda-emu` alone,
    /// the kernels run on the CPU emulator, for tests).
    Cuda,
}

impl DeviceKind {
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" | "gpu" => Ok(DeviceKind::Cuda),
            _ => Err(format!("unknown device {s:?} (expected cpu or cuda)")),
        }
    }
}

/// Work written once for any backend.
pub trait OnDevice {
    type Output;
    fn run<B: Backend>(self) -> Result<Self::Output>;
}

/// Runs `work` on the backend of `kind`, opening the device first. Without a usable device
/// (no driver, no GPU, kernels not built, or a build without CUDA) an `Error::Device` says
/// why in one line.
pub fn on_device<W: OnDevice>(kind: DeviceKind, work: W) -> Result<W::Output> {
    match kind {
        DeviceKind::Cpu => work.run::<Cpu>(),
        DeviceKind::Cuda => on_cuda(work),
    }
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
fn on_cuda<W: OnDevice>(work: W) -> Result<W::Output> {
    super::cuda::Cuda::open()?;
    work.run::<super::cuda::Cuda>()
}

#[cfg(not(any(feature = "cuda", feature = "cuda-emu")))]
fn on_cuda<W: OnDevice>(_: W) -> Result<W::Output> {
    Err(crate::error::Error::Device("CUDA unavailable: this rmx was built without it (cargo build --release --features cuda)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    struct Name;

    impl OnDevice for Name {
        type Output = &'static str;
        fn run<B: Backend>(self) -> Result<&'static str> {
            Ok(B::KIND.name())
        }
    }

    #[test]
    fn names_parse_and_pick_their_backend() {
        assert_eq!("CUDA".parse::<DeviceKind>(), Ok(DeviceKind::Cuda));
        assert_eq!("cpu".parse::<DeviceKind>(), Ok(DeviceKind::Cpu));
        assert!("tpu".parse::<DeviceKind>().unwrap_err().contains("expected cpu or cuda"));
        assert_eq!(on_device(DeviceKind::Cpu, Name).unwrap(), "cpu");
        match on_device(DeviceKind::Cuda, Name) {
            Ok(name) => assert_eq!(name, "cuda"),
            Err(Error::Device(why)) => assert!(!why.is_empty() && !why.contains('\n'), "{why}"),
            Err(e) => panic!("not a device error: {e}"),
        }
    }
}
