__version__ = '0.2.0.dev0'


def parse_version_info(version_str: str) -> tuple:
    """Parse '1.2.3rc1' into (1, 2, 3, 'rc1'), '0.2.0.dev0' into
    (0, 2, 0, 'dev0')."""
    parts = []
    for x in version_str.split('.'):
        if x.isdigit():
            parts.append(int(x))
        elif 'rc' in x:
            major, rc = x.split('rc')
            parts.extend([int(major), f'rc{rc}'])
        elif x.startswith('dev'):
            parts.append(x)
    return tuple(parts)


version_info = parse_version_info(__version__)
