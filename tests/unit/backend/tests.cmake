spoke_test(test_backend ${CMAKE_CURRENT_LIST_DIR}/test_backend.c LABELS unit)
spoke_test(test_bind ${CMAKE_CURRENT_LIST_DIR}/test_bind.c LABELS unit)
set_tests_properties(test_bind PROPERTIES SKIP_RETURN_CODE 77)
